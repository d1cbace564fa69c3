"""Gates that compare the candidate's metric with production's on the same holdout rows.

:func:`non_inferiority_gate` (the default holdout test: not worse by more than what the rows can
resolve), :func:`holdout_gate` (superiority: at least a margin better) and
:func:`non_regression_gate` (a point-estimate tolerance, for the rows outside a local shift and for
online chains). Which rows each one judges is :mod:`ct_assets.core.release.lineup`.

>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> y = rng.integers(0, 2, 2000)
>>> production = np.clip(0.5 + (y - 0.5) * 0.3 + rng.normal(0, 0.2, 2000), 0, 1)
>>> same_skill = np.clip(0.5 + (y - 0.5) * 0.3 + rng.normal(0, 0.2, 2000), 0, 1)
>>> non_inferiority_gate(y, same_skill, production, n_boot=50).passed
True
>>> holdout_gate(y, same_skill, production, n_boot=50).passed  # superiority: no gain to show
False
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist
from typing import Any

import numpy as np

from ct_assets.core.release.gates import GateResult, Severity, paired_scores
from ct_assets.core.release.metrics import (
    Metric,
    bootstrap_improvements,
    improvement,
    metric_fn,
    percentile_interval,
)


@dataclass(frozen=True)
class _Comparison:
    """Both models' metric on the same rows and the paired bootstrap of the candidate's improvement."""

    candidate: float
    production: float
    improvement: float
    boot: list[float]
    ci_low: float
    ci_high: float

    def metrics(self, metric: str, n: int) -> dict[str, Any]:
        return {f"candidate_{metric}": self.candidate, f"production_{metric}": self.production,
                "improvement": self.improvement, "ci_low": self.ci_low, "ci_high": self.ci_high, "n": n,
                "n_boot_used": len(self.boot)}


def _compare(gate: str, y: np.ndarray, cand: np.ndarray, prod: np.ndarray, metric: str, relative: bool,
             n_boot: int, seed: int, confidence: float) -> _Comparison:
    score = metric_fn(metric)
    cand_value, prod_value = score(y, cand), score(y, prod)
    boot = bootstrap_improvements(y, cand, prod, metric, relative, n_boot, seed)
    if not boot:
        raise ValueError(f"{gate}: every bootstrap resample had a single class; the holdout is too small")
    ci_low, ci_high = percentile_interval(boot, confidence)
    return _Comparison(cand_value, prod_value, improvement(cand_value, prod_value, metric, relative), boot,
                       ci_low, ci_high)


def _candidate_alone(name: str, y: np.ndarray, cand: np.ndarray, metric: str, severity: Severity,
                     threshold: dict[str, Any]) -> GateResult:
    """Without a production model the candidate passes (it bootstraps production); AUC needs both classes."""
    value = metric_fn(metric)(y, cand)
    if metric == "auc" and math.isnan(value):
        raise ValueError(f"{name}: AUC needs both classes in y_true")
    return GateResult(name, True, severity, {f"candidate_{metric}": value, "n": len(y)}, threshold,
                      f"no production model: candidate ({metric} {value:.4f}) bootstraps production")


def holdout_gate(
    y_true: Any,
    candidate_scores: Any,
    production_scores: Any | None,
    metric: Metric = "auc",
    margin: float = 0.01,
    relative: bool = True,
    n_boot: int = 200,
    seed: int = 0,
    confidence: float = 0.95,
    severity: Severity = "error",
) -> GateResult:
    """Superiority: the candidate must beat production by ``margin`` and not by noise.

    Passes only if (a) the improvement (relative to production's value when ``relative``, so 0.01
    means "1 % better") is at least ``margin`` and (b) the paired bootstrap ``confidence`` interval of
    the improvement lies entirely above 0. Without a production model it passes (bootstrap).

    Example: ``holdout_gate(y, cand_p, prod_p, metric="auc", margin=0.01).passed``.
    """
    if margin < 0 or n_boot < 1 or not 0 < confidence < 1:
        raise ValueError("need margin >= 0, n_boot >= 1 and 0 < confidence < 1")
    y, cand, prod = paired_scores(y_true, candidate_scores, production_scores, severity, metric)
    threshold = {"mode": "superiority", "metric": metric, "margin": margin, "relative": relative,
                 "confidence": confidence}
    if prod is None:
        return _candidate_alone("holdout", y, cand, metric, severity, threshold)
    compared = _compare("holdout_gate", y, cand, prod, metric, relative, n_boot, seed, confidence)
    metrics = compared.metrics(metric, len(y))
    kind = "relative" if relative else "absolute"
    summary = (f"candidate {metric} {compared.candidate:.4f} vs production {compared.production:.4f}: {kind} "
               f"improvement {compared.improvement:+.4f} (required {margin:+.4f}), {confidence:.0%} CI "
               f"[{compared.ci_low:+.4f}, {compared.ci_high:+.4f}]")
    if compared.improvement < margin:
        return GateResult("holdout", False, severity, metrics, threshold, f"{summary}; improvement below the margin")
    if compared.ci_low <= 0:
        return GateResult("holdout", False, severity, metrics, threshold,
                          f"{summary}; the confidence interval includes 0, so the gain may be noise")
    return GateResult("holdout", True, severity, metrics, threshold, f"{summary}; candidate is better")


def resolvable_margin(standard_error: float, confidence: float, power: float) -> float:
    """The smallest loss a holdout with this bootstrap ``standard_error`` can tell from no loss: a
    non-inferiority margin below it would reject an equally good candidate more often than ``1 - power``.

    >>> round(resolvable_margin(0.01, confidence=0.95, power=0.8), 4)  # (1.96 + 0.84) x SE
    0.028
    """
    normal = NormalDist()
    return ((normal.inv_cdf(1 - (1 - confidence) / 2) + normal.inv_cdf(power)) * standard_error)


def non_inferiority_gate(
    y_true: Any,
    candidate_scores: Any,
    production_scores: Any | None,
    metric: Metric = "auc",
    margin_floor: float = 0.002,
    max_margin: float = 0.05,
    power: float = 0.8,
    n_boot: int = 200,
    seed: int = 0,
    confidence: float = 0.95,
    severity: Severity = "error",
    name: str = "holdout",
    rows: str = "holdout rows",
) -> GateResult:
    """Non-inferiority: the candidate may not be worse than production by more than a margin.

    Passes when the lower bound of the paired bootstrap ``confidence`` interval of (candidate -
    production), in metric units, lies above ``-margin``. The margin is what these rows can resolve
    (:func:`resolvable_margin` of the bootstrap standard error), never below ``margin_floor`` and at
    most ``max_margin``: a margin finer than the holdout's noise would reject good candidates by chance.
    ``rows`` names the rows in the reason. Without a production model it passes (bootstrap).
    """
    if not 0 <= margin_floor <= max_margin or n_boot < 2 or not 0 < confidence < 1 or not 0 < power < 1:
        raise ValueError("need 0 <= margin_floor <= max_margin, n_boot >= 2, 0 < confidence < 1 and 0 < power < 1")
    y, cand, prod = paired_scores(y_true, candidate_scores, production_scores, severity, metric)
    threshold = {"mode": "non_inferiority", "metric": metric, "margin_floor": margin_floor,
                 "max_margin": max_margin, "power": power, "confidence": confidence}
    if prod is None:
        return _candidate_alone(name, y, cand, metric, severity, threshold)
    compared = _compare(name, y, cand, prod, metric, False, n_boot, seed, confidence)
    standard_error = float(np.std(compared.boot, ddof=1)) if len(compared.boot) > 1 else math.inf
    resolution = resolvable_margin(standard_error, confidence, power)
    margin = min(max(margin_floor, resolution), max_margin)
    metrics = {**compared.metrics(metric, len(y)), "standard_error": standard_error, "margin": margin}
    bound = ("the floor" if margin == margin_floor else "the cap" if margin == max_margin
             else f"what {len(y)} rows resolve")
    summary = (f"on {len(y)} {rows}: candidate {metric} {compared.candidate:.4f} vs production "
               f"{compared.production:.4f}, gain {compared.improvement:+.4f}, {confidence:.0%} CI "
               f"[{compared.ci_low:+.4f}, {compared.ci_high:+.4f}]; margin {margin:.4f} ({bound}: bootstrap SE "
               f"{standard_error:.4f}, floor {margin_floor}, cap {max_margin})")
    if compared.ci_low <= -margin:
        return GateResult(name, False, severity, metrics, threshold,
                          f"{summary}: the candidate may be worse by more than the margin")
    return GateResult(name, True, severity, metrics, threshold,
                      f"{summary}: the candidate is not worse by more than the margin")


def non_regression_gate(
    y_true: Any,
    candidate_scores: Any,
    production_scores: Any | None,
    metric: Metric = "auc",
    tolerance: float = 0.01,
    scope: str = "rows outside the shift",
    severity: Severity = "error",
) -> GateResult:
    """The candidate may not be worse than production by more than ``tolerance`` (metric units).

    A local fine-tune must win where the shift is (the holdout gate, on those rows) without paying
    for it elsewhere: this gate guards the rest.
    """
    y, candidate, production = paired_scores(y_true, candidate_scores, production_scores, severity, metric)
    threshold = {"tolerance": tolerance, "metric": metric, "scope": scope}
    if production is None or len(np.unique(y)) < 2:
        return GateResult("non_regression", True, severity, {"n": len(y)}, threshold,
                          f"nothing to compare on {scope}")
    fn = metric_fn(metric)
    cand, prod = fn(y, candidate), fn(y, production)
    worse_by = -improvement(cand, prod, metric, relative=False)
    metrics = {f"candidate_{metric}": cand, f"production_{metric}": prod, "worse_by": worse_by, "n": len(y)}
    summary = f"on {scope}: candidate {metric} {cand:.4f} vs production {prod:.4f}"
    if worse_by > tolerance:
        return GateResult("non_regression", False, severity, metrics, threshold,
                          f"{summary}: worse by {worse_by:.4f} > {tolerance}")
    return GateResult("non_regression", True, severity, metrics, threshold, f"{summary}: no regression")
