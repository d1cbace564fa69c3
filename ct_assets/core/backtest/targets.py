"""What a backtest is judged by: time-to-recover, stable stretches, and the issue's targets as data.

:func:`time_to_recover` measures, after each change point, how many batches pass until a metric is
back within a tolerance of its pre-change level. :func:`check_targets` turns a backtest result into
:class:`TargetCheck` rows (target, value, threshold, met) instead of assertions, so a benchmark can
print an honest figure when a target is missed.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from ct_assets.core.backtest.results import BacktestResult, Recovery


def time_to_recover(
    metrics: Sequence[float | None],
    first_batch: int,
    change_points: Sequence[int],
    pre_batches: int = 3,
    tolerance: float = 0.01,
    higher_is_better: bool = True,
) -> tuple[Recovery, ...]:
    """Recovery after each change point of a metric series (``metrics[i]`` is batch ``first_batch + i``).

    Back "within 1 %" (``tolerance=0.01``) means ``metric >= pre_level * 0.99`` when higher is better,
    ``metric <= pre_level * 1.01`` otherwise. Undefined metrics (None/NaN) are skipped.

    >>> [r.batches for r in time_to_recover([0.9, 0.9, 0.9, 0.6, 0.8, 0.895], 0, [3])]
    [2]
    """
    if pre_batches < 1 or tolerance < 0:
        raise ValueError(f"need pre_batches >= 1 and tolerance >= 0, got {pre_batches}, {tolerance}")
    last_batch = first_batch + len(metrics)

    def value(batch: int) -> float | None:
        if not first_batch <= batch < last_batch:
            return None
        v = metrics[batch - first_batch]
        return None if v is None or not math.isfinite(v) else float(v)

    points = sorted(change_points)
    recoveries = []
    for index, point in enumerate(points):
        before = [v for b in range(point - pre_batches, point) if (v := value(b)) is not None]
        if not before:
            recoveries.append(Recovery(point, None, None))
            continue
        level = sum(before) / len(before)
        bound = level * (1.0 - tolerance) if higher_is_better else level * (1.0 + tolerance)
        end = points[index + 1] if index + 1 < len(points) else last_batch
        batches = None
        for batch in range(point, end):
            v = value(batch)
            if v is not None and (v >= bound if higher_is_better else v <= bound):
                batches = batch - point
                break
        recoveries.append(Recovery(point, level, batches))
    return tuple(recoveries)


def stable_batches(first_batch: int, n_batches: int, change_points: Sequence[int], settle_batches: int) -> tuple[int, ...]:
    """Evaluated batches at least ``settle_batches`` after every earlier change point (and before the
    first): stretches where the generating process has not changed within a training window."""
    if settle_batches < 0:
        raise ValueError(f"settle_batches must be >= 0, got {settle_batches}")
    return tuple(b for b in range(first_batch, n_batches)
                 if not any(c <= b < c + settle_batches for c in change_points))


@dataclass(frozen=True)
class TargetCheck:
    """One target of the backtest issue on one run: the measured value, the threshold, whether it is met."""

    stream: str
    label_delay: int
    target: str
    value: float | None
    threshold: float
    met: bool
    detail: str


def check_targets(
    result: BacktestResult,
    policy: str = "ct_policy",
    baseline: str = "always_retrain",
    max_metric_shortfall: float = 0.005,
    max_compute_share: float = 0.2,
    max_recovery_after_labels: int = 2,
    max_false_triggers_per_30: float = 1.0,
    settle_batches: int | None = None,
) -> tuple[TargetCheck, ...]:
    """The issue's targets for ``policy`` in ``result`` (see the backtest issue, section 4).

    * ``pareto``: no other real strategy has a strictly better mean metric at strictly lower compute;
    * ``metric_vs_baseline``: policy mean minus baseline mean (in metric units, sign: positive = better)
      at least ``-max_metric_shortfall`` (0.005 = half a point);
    * ``compute_share``: policy compute / baseline compute at most ``max_compute_share``;
    * ``recovery``: after every change point, recovery within ``max_recovery_after_labels`` batches after
      the labels of the new regime arrive (i.e. ``recovery - label_delay``), the worst one reported;
    * ``false_triggers``: drift-triggered decisions on stable batches (at least ``settle_batches``,
      default the training window plus the label delay, after a change point), per 30 stable batches.

    Compute is the deterministic unit (training GFLOPs), so ``pareto`` and ``compute_share`` are the same
    on every repetition; the CPU seconds are quoted beside it.
    """
    runs = {run.strategy: run for run in result.runs}
    for name in (policy, baseline):
        if name not in runs:
            raise ValueError(f"result has no run named {name!r}; runs: {sorted(runs)}")
    sign = 1.0 if result.higher_is_better else -1.0
    mine, base = runs[policy], runs[baseline]
    checks = []

    def add(target: str, value: float | None, threshold: float, met: bool, detail: str) -> None:
        checks.append(TargetCheck(result.stream_name, result.label_delay, target, value, threshold, met, detail))

    dominating = [run.strategy for run in result.runs
                  if not run.is_reference and run.strategy != policy
                  and sign * (run.mean_metric - mine.mean_metric) > 0
                  and run.compute.train_gflops < mine.compute.train_gflops]
    add("pareto", float(len(dominating)), 0.0, not dominating,
        "dominated by " + ", ".join(dominating) if dominating else f"{policy} is on the accuracy/compute front")

    shortfall = sign * (mine.mean_metric - base.mean_metric)
    add("metric_vs_baseline", shortfall, -max_metric_shortfall, shortfall >= -max_metric_shortfall,
        f"{policy} {mine.mean_metric:.4f} vs {baseline} {base.mean_metric:.4f} ({result.metric})")

    share = mine.compute.train_gflops / base.compute.train_gflops if base.compute.train_gflops > 0 else math.inf
    add("compute_share", share, max_compute_share, share <= max_compute_share,
        f"{policy} {mine.compute.train_gflops:.3f} GFLOPs ({mine.compute.cpu_seconds:.2f} cpu-s) vs {baseline} "
        f"{base.compute.train_gflops:.3f} GFLOPs ({base.compute.cpu_seconds:.2f} cpu-s)")

    judged = [r for r in mine.recovery if r.pre_level is not None]
    if not judged:
        add("recovery", None, float(max_recovery_after_labels), True, "no change point with a pre-change level")
    else:
        after_labels = [None if r.batches is None else r.batches - result.label_delay for r in judged]
        met = all(a is not None and a <= max_recovery_after_labels for a in after_labels)
        worst = None if any(a is None for a in after_labels) else float(max(after_labels))
        add("recovery", worst, float(max_recovery_after_labels), met,
            "; ".join(f"change@{r.change_point}: {'never' if r.batches is None else r.batches}" for r in judged)
            + f" (batches; labels arrive after {result.label_delay})")

    settle = result.window_batches + result.label_delay if settle_batches is None else settle_batches
    stable = set(stable_batches(result.first_batch, result.n_batches, result.change_points, settle))
    triggers = sum(1 for row in result.daily if row.strategy == policy and row.drift_triggered and row.batch in stable)
    if not stable:
        add("false_triggers", None, max_false_triggers_per_30, True, "no stable batches")
    else:
        rate = 30.0 * triggers / len(stable)
        add("false_triggers", rate, max_false_triggers_per_30, rate <= max_false_triggers_per_30,
            f"{triggers} drift-triggered decisions on {len(stable)} stable batches")
    return tuple(checks)
