"""What one strategy's pass adds up to: its summary row from per-batch metrics, event counts and trainings."""

from __future__ import annotations

from collections import Counter

import numpy as np

from ct_assets.core.backtest.batches import Batches
from ct_assets.core.backtest.config import BacktestConfig
from ct_assets.core.backtest.results import ComputeTotals, StrategyRun
from ct_assets.core.backtest.scoring import higher_is_better
from ct_assets.core.backtest.strategies import TrainingRun
from ct_assets.core.backtest.targets import time_to_recover


def summarise_run(name: str, is_reference: bool, metrics: list[float | None], accuracies: list[float],
                  counts: Counter[str], trainings: tuple[TrainingRun, ...], config: BacktestConfig,
                  data: Batches) -> StrategyRun:
    """The summary of one pass (``metrics[i]`` is batch ``warmup_batches + i``); ``trainings`` are the
    ones its compute adds up."""
    defined = [m for m in metrics if m is not None]
    recovery = time_to_recover(metrics, config.warmup_batches, data.spec.change_points,
                               config.recovery_pre_batches, config.recovery_tolerance, higher_is_better(config.metric))
    return StrategyRun(
        strategy=name, is_reference=is_reference,
        mean_metric=float(np.mean(defined)) if defined else float("nan"),
        mean_accuracy=float(np.mean(accuracies)),
        retrains=counts["retrains"], fine_tunes=counts["fine_tunes"], online_updates=counts["online_updates"],
        promotions=counts["promotions"], gate_failures=counts["gate_failures"], rollbacks=counts["rollbacks"],
        escalations=counts["escalations"], escalations_approved=counts["escalations_approved"],
        drift_triggers=counts["drift_triggers"], recovery=recovery,
        compute=ComputeTotals.of([run.cost for run in trainings]), trainings=trainings)
