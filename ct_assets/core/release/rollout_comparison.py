"""Whether a model being rolled out holds up against the one it replaces: the rollback verdict.

:func:`compare_live` scores both models on the same recently labelled rows (a shadow comparison, so
no per-row serving log is needed) and adds the complaint-rate ratio since the promotion. It only
judges; :func:`ct_assets.core.release.rollout.advance_rollout` acts on the verdict.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from ct_assets.core.release.metrics import (
    binary_labels,
    bootstrap_improvements,
    check_metric,
    improvement,
    metric_fn,
    percentile_interval,
    probabilities,
)

VERDICT_OK = "ok"
VERDICT_DEGRADED = "degraded"
VERDICT_INSUFFICIENT = "insufficient_data"


@dataclass(frozen=True)
class LiveComparison:
    """New vs previous model on the same recently labelled rows, and the complaint-rate ratio.

    ``degradation`` is how much worse the new model is (positive = worse, metric units) with its paired
    bootstrap interval ``[ci_low, ci_high]``; NaN when there was not enough data to compute it.
    """

    verdict: str  # "ok" | "degraded" | "insufficient_data"
    reason: str
    metric: str
    new_value: float
    previous_value: float
    degradation: float
    ci_low: float
    ci_high: float
    tolerance: float
    n_rows: int
    complaints_ratio: float | None
    max_complaints_ratio: float

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (non-finite numbers become None)."""
        return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in asdict(self).items()}


def compare_live(
    y: Any,
    new_scores: Any,
    previous_scores: Any,
    complaints_ratio: float | None,
    metric: str = "auc",
    tolerance: float = 0.02,
    min_rows: int = 200,
    *,
    max_complaints_ratio: float = 1.5,
    n_boot: int = 200,
    confidence: float = 0.95,
    seed: int = 0,
) -> LiveComparison:
    """Compare the new and the previous model on the same labelled rows ``y`` (a shadow comparison).

    ``degraded`` when complaints rose to more than ``max_complaints_ratio`` times their pre-promotion
    rate (``complaints_ratio``; None = unknown, not judged), or when the new model is worse by more than
    ``tolerance`` (metric units) and the paired bootstrap ``confidence`` interval of the degradation lies
    above zero, so noise alone never rolls back. ``insufficient_data`` with fewer than ``min_rows`` rows
    (or one class, for AUC).

    Example: ``compare_live(y, new_p, old_p, complaints_ratio=1.1).verdict`` -> ``"ok"``.
    """
    check_metric(metric)
    if isinstance(tolerance, bool) or not isinstance(tolerance, (int, float)) or not 0 <= tolerance < math.inf:
        raise ValueError(f"tolerance must be a finite number >= 0, got {tolerance!r}")
    if isinstance(min_rows, bool) or not isinstance(min_rows, int) or min_rows < 2:
        raise ValueError(f"min_rows must be an integer >= 2, got {min_rows!r}")
    if complaints_ratio is not None and (not isinstance(complaints_ratio, (int, float)) or math.isnan(complaints_ratio)
                                         or complaints_ratio < 0):
        raise ValueError(f"complaints_ratio must be a number >= 0 or None, got {complaints_ratio!r}")
    if not max_complaints_ratio >= 1.0:
        raise ValueError(f"max_complaints_ratio must be >= 1, got {max_complaints_ratio!r}")
    if n_boot < 1 or not 0.0 < confidence < 1.0:
        raise ValueError("need n_boot >= 1 and 0 < confidence < 1")

    labels = np.asarray(y).reshape(-1)
    n_rows = int(labels.shape[0])
    nan = float("nan")
    common = dict(metric=metric, tolerance=float(tolerance), n_rows=n_rows,
                  complaints_ratio=None if complaints_ratio is None else float(complaints_ratio),
                  max_complaints_ratio=float(max_complaints_ratio))
    values: dict[str, float] = dict(new_value=nan, previous_value=nan, degradation=nan, ci_low=nan, ci_high=nan)
    if n_rows:
        labels = binary_labels(labels)
        new = probabilities(new_scores, n_rows, "new_scores")
        previous = probabilities(previous_scores, n_rows, "previous_scores")
        if n_rows >= min_rows:
            values = _paired_degradation(labels, new, previous, metric, n_boot, confidence, seed)

    complaints_rose = complaints_ratio is not None and complaints_ratio > max_complaints_ratio
    complaint_text = ("complaints unknown" if complaints_ratio is None else
                      f"complaints {complaints_ratio:.3g}x the pre-promotion rate (max {max_complaints_ratio:.3g}x)")
    if math.isnan(values["degradation"]):
        metric_text = (f"{n_rows} labelled rows < {min_rows} needed" if n_rows < min_rows
                       else f"{metric} undefined on {n_rows} rows (a single class)")
    else:
        metric_text = (f"{metric} new {values['new_value']:.4f} vs previous {values['previous_value']:.4f}: "
                       f"worse by {values['degradation']:+.4f} (tolerance {tolerance:.4f}), "
                       f"{confidence:.0%} CI [{values['ci_low']:+.4f}, {values['ci_high']:+.4f}], n={n_rows}")
    metric_worse = values["degradation"] > tolerance and values["ci_low"] > 0  # False when NaN
    if complaints_rose or metric_worse:
        why = [text for text, fired in ((metric_text, metric_worse), (complaint_text, complaints_rose)) if fired]
        verdict, reason = VERDICT_DEGRADED, "new model degraded: " + "; ".join(why)
    elif math.isnan(values["degradation"]):
        verdict, reason = VERDICT_INSUFFICIENT, f"cannot judge yet: {metric_text}; {complaint_text}"
    else:
        verdict, reason = VERDICT_OK, f"new model holds up: {metric_text}; {complaint_text}"
    return LiveComparison(verdict=verdict, reason=reason, **values, **common)  # type: ignore[arg-type]


def _paired_degradation(y: np.ndarray, new: np.ndarray, previous: np.ndarray, metric: str, n_boot: int,
                        confidence: float, seed: int) -> dict[str, float]:
    """Point degradation (positive = new worse) and its paired bootstrap interval; NaN if undefined."""
    score = metric_fn(metric)
    new_value, previous_value = score(y, new), score(y, previous)
    nan = float("nan")
    if math.isnan(new_value) or math.isnan(previous_value):
        return dict(new_value=new_value, previous_value=previous_value, degradation=nan, ci_low=nan, ci_high=nan)
    # The degradation is the new model's improvement over the previous one, negated.
    boot = [-gain for gain in bootstrap_improvements(y, new, previous, metric, False, n_boot, seed)]
    if not boot:
        return dict(new_value=new_value, previous_value=previous_value, degradation=nan, ci_low=nan, ci_high=nan)
    ci_low, ci_high = percentile_interval(boot, confidence)
    return dict(new_value=float(new_value), previous_value=float(previous_value),
                degradation=-improvement(new_value, previous_value, metric, False), ci_low=ci_low, ci_high=ci_high)
