"""What a backtest produces: per-strategy summaries, per-batch rows and the whole run's result.

Plain frozen dataclasses, so the store, the plot, the catalog and the targets read a result without
loading the replay machinery. Equality (``==``) compares the tables and the deterministic compute
(``train_gflops``); measured compute (seconds, energy) is excluded.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING

from ct_assets.core.backtest.hindsight import HindsightReport
from ct_assets.core.backtest.strategies import TrainingRun
from ct_assets.core.decision.policy import Decision, Evidence
from ct_assets.core.training.cost import ComputeCost

if TYPE_CHECKING:
    import pandas as pd


@dataclass(frozen=True)
class Recovery:
    """Recovery after one change point.

    ``pre_level`` is the mean metric of the (up to ``pre_batches``) evaluated batches right before the
    change; ``batches`` counts batches from the change point to the first batch whose metric is back
    within the tolerance of it (0: it never dropped), or is None when that did not happen before the
    next change point or the end of the stream (or no pre-change level exists).
    """

    change_point: int
    pre_level: float | None
    batches: int | None


@dataclass(frozen=True)
class ComputeTotals:
    """Sum of a strategy's training costs. ``n_trainings`` and the deterministic ``train_gflops`` take part
    in equality; the rest is measured."""

    n_trainings: int
    train_gflops: float = 0.0
    cpu_seconds: float = field(default=0.0, compare=False)
    wall_seconds: float = field(default=0.0, compare=False)
    energy_kwh: float = field(default=0.0, compare=False)
    co2_kg: float = field(default=0.0, compare=False)

    @classmethod
    def of(cls, costs: list[ComputeCost]) -> ComputeTotals:
        gflops = [c.train_gflops for c in costs]
        if None in gflops:
            raise ValueError("every backtest training run counts its examples and parameters")
        return cls(len(costs), float(sum(g for g in gflops if g is not None)), sum(c.cpu_seconds for c in costs),
                   sum(c.wall_seconds for c in costs), sum(c.energy_kwh for c in costs), sum(c.co2_kg for c in costs))


@dataclass(frozen=True)
class DailyRow:
    """One strategy on one evaluated batch. ``metric`` is None where undefined (AUC on a single class).

    ``action``: what the strategy decided after the batch; ``outcome``: what came of it (``promoted``,
    ``rejected: <gates>``, ``rolled back``, ``skipped: <why>``, ...; ``;``-separated).
    """

    strategy: str
    batch: int
    metric: float | None
    accuracy: float
    action: str
    outcome: str
    is_change_point: bool
    drift_triggered: bool


@dataclass(frozen=True)
class StrategyRun:
    """Summary of one strategy. ``is_reference``: not a real strategy (the oracle sees the labels it is
    scored on). Counts are training calls (rejected candidates included) and events; ``escalations`` are
    decisions to ask a human, ``escalations_approved`` the questions the modelled human approved
    (``BacktestConfig.human``)."""

    strategy: str
    is_reference: bool
    mean_metric: float
    mean_accuracy: float
    retrains: int
    fine_tunes: int
    online_updates: int
    promotions: int
    gate_failures: int
    rollbacks: int
    escalations: int
    escalations_approved: int
    drift_triggers: int
    recovery: tuple[Recovery, ...]
    compute: ComputeTotals
    # Every training call behind ``compute``, in order (measured, so not part of equality).
    trainings: tuple[TrainingRun, ...] = field(default=(), compare=False, repr=False)


@dataclass(frozen=True)
class PolicyStep:
    """One decision of a policy strategy, with the evidence it was made on (not part of equality:
    the decision's cost estimate is measured)."""

    strategy: str
    batch: int
    evidence: Evidence
    decision: Decision


@dataclass(frozen=True)
class BacktestResult:
    """Every strategy's summary (``runs``, oracle last) and per-batch rows (``daily``) of one replay.

    Equal results (``==``) mean equal tables and equal deterministic compute; measured compute and the
    policy's cost estimates are excluded from equality.
    """

    run_id: str
    stream_name: str
    label_delay: int
    seed: int
    metric: str
    higher_is_better: bool
    first_batch: int
    n_batches: int
    window_batches: int
    change_points: tuple[int, ...]
    warmup_compute: ComputeTotals
    runs: tuple[StrategyRun, ...]
    daily: tuple[DailyRow, ...]
    hindsight: HindsightReport | None
    config_json: str
    notes: tuple[str, ...] = ()  # warnings about the run itself (e.g. a constant warm-up model)
    policy_steps: tuple[PolicyStep, ...] = field(default=(), compare=False, repr=False)

    def run(self, strategy: str) -> StrategyRun:
        for run in self.runs:
            if run.strategy == strategy:
                return run
        raise ValueError(f"no run named {strategy!r}; runs: {[r.strategy for r in self.runs]}")

    def daily_frame(self) -> pd.DataFrame:
        """``daily`` as a DataFrame (one row per strategy and batch)."""
        import pandas as pd
        return pd.DataFrame([asdict(row) for row in self.daily])
