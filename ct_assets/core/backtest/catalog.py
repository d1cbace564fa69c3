"""The named streams a backtest can replay, with the settings each needs, and the summary table.

Shared by `ct backtest`, the `backtest` asset and `benchmarks/backtest_benchmark.py`, so a name means
the same stream everywhere.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace

from ct_assets.core.backtest.config import BacktestConfig
from ct_assets.core.backtest.real_data import employment_ma_stream
from ct_assets.core.backtest.results import BacktestResult
from ct_assets.core.backtest.stream import Stream
from ct_assets.core.backtest.synthetic import SYNTHETIC_STREAMS
from ct_assets.core.monitoring.drift.types import DriftConfig
from ct_assets.core.training.model import TrainingConfig
from ct_assets.simulation.backtest_stream import simulator_stream

EPOCHS = 5
BATCH_SIZE = 256
FINE_TUNE_SHARE = 0.2  # a fine-tune's step budget as a share of a retrain's (about the live ratio)
# Floor of a retrain's optimizer steps. On 235-row batches the budget above is 30 steps per retrain and 10
# for the 2-batch warm-up model, which then predicts a single class (Agrawal: AUC 0.54); 100 steps reach
# AUC 0.91 there (measured: 0.92 at 200, 0.92 at 400), and streams of 1000-row batches already take ~110.
MIN_RETRAIN_STEPS = 100


@dataclass(frozen=True)
class StreamCase:
    """A named stream and the drift features it must skip (a daily shop batch is all-weekday or all-weekend)."""

    name: str
    build: Callable[[], Stream]
    drift_excluded_features: tuple[str, ...] = ()


def stream_cases(quick: bool = False, seed: int = 0) -> list[StreamCase]:
    """Every named stream: ``simulator`` (the mixed timeline), ``<generator>_<abrupt|gradual>`` for SEA,
    hyperplane, STAGGER and Agrawal, and ``employment_ma`` (real ACS census data). ``quick`` shrinks them."""
    synthetic_batches, synthetic_rows = (16, 500) if quick else (40, 1000)
    points = (6, 11) if quick else (10, 20, 30)
    cases = [StreamCase(
        "simulator",
        lambda: simulator_stream(n_days=30 if quick else 60, events_per_day=1000 if quick else 2000, seed=seed,
                                 **({"timeline": "stable@0,regional_promotion@8:region=south:until=14,"
                                                 "sensor_hardware_change@12,market_shift@20"} if quick else {})),
        DriftConfig().excluded_features)]
    for generator, build in SYNTHETIC_STREAMS.items():
        for drift in ("abrupt", "gradual"):
            cases.append(StreamCase(
                f"{generator}_{drift}",
                lambda build=build, drift=drift: build(n_batches=synthetic_batches, batch_size=synthetic_rows,
                                                       change_points=points, drift=drift, seed=seed)))
    cases.append(StreamCase("employment_ma", lambda: employment_ma_stream(
        batch_size=1000 if quick else 2000, seed=seed, max_batches_per_year=4 if quick else 10)))
    return cases


def stream_names() -> list[str]:
    return [case.name for case in stream_cases()]


def training_config(stream: Stream, window_batches: int) -> TrainingConfig:
    """The live MLP with fewer epochs, at least ``MIN_RETRAIN_STEPS`` steps per retrain (however small the
    window), and a fine-tune step budget proportional to a retrain's."""
    rows = sum(len(batch) for batch in stream.batches) / stream.n_batches
    retrain_steps = max(EPOCHS * math.ceil(0.8 * rows * window_batches / BATCH_SIZE), MIN_RETRAIN_STEPS)
    return TrainingConfig(epochs=EPOCHS, batch_size=BATCH_SIZE, device="cpu", min_steps=MIN_RETRAIN_STEPS,
                          fine_tune_max_steps=max(5, round(FINE_TUNE_SHARE * retrain_steps)))


def prepare(name: str, quick: bool = False, seed: int = 0, label_delay: int = 0) -> tuple[Stream, BacktestConfig]:
    """The named stream (renamed to ``name``) and the backtest configuration the benchmark uses for it.

    Example: ``stream, config = prepare("sea_abrupt", label_delay=1)``; then ``run_backtest(stream, config)``.
    """
    cases = {case.name: case for case in stream_cases(quick, seed)}
    if name not in cases:
        raise ValueError(f"unknown stream {name!r}; choose from {sorted(cases)}")
    case = cases[name]
    built = case.build()
    stream = Stream(replace(built.spec, name=name), built.batches)
    config = BacktestConfig(seed=seed, label_delay=label_delay, drift_excluded_features=case.drift_excluded_features)
    return stream, replace(config, training=training_config(stream, config.window_batches))


def strategy_table(result: BacktestResult) -> str:
    """The per-strategy summary as a GitHub markdown table."""
    from tabulate import tabulate

    rows = []
    for run in result.runs:
        recovery = ",".join("-" if r.batches is None else str(r.batches) for r in run.recovery if r.pre_level is not None)
        rows.append([
            run.strategy + (" (ref)" if run.is_reference else ""), f"{run.mean_metric:.4f}", f"{run.mean_accuracy:.4f}",
            f"{run.compute.train_gflops:.3f}", f"{run.compute.cpu_seconds:.2f}",
            f"{run.compute.energy_kwh * 3.6e6:.1f}",
            f"{run.retrains}/{run.fine_tunes}/{run.online_updates}", run.gate_failures, run.rollbacks,
            f"{run.escalations}/{run.escalations_approved}", recovery or "n/a",
        ])
    return tabulate(rows, headers=["strategy", f"mean {result.metric}", "accuracy", "GFLOPs", "cpu s", "energy J",
                                   "retrain/ft/online", "gate fail", "rollback", "escal./approved",
                                   "recovery (batches)"],
                    tablefmt="github") + "".join(f"\n\nNote: {note}" for note in result.notes)
