"""Metrics the release gates and the rollout monitor compare models on, as pure numpy functions.

AUC comes from scipy's ``rankdata`` (imported inside the function: scipy is slow to import). A
paired bootstrap resamples the same rows for both models, so the interval of their difference is
not widened by the noise both share.

>>> import numpy as np
>>> y = np.array([0, 0, 1, 1])
>>> roc_auc(y, np.array([0.1, 0.4, 0.35, 0.8]))
0.75
>>> improvement(0.80, 0.75, "auc", relative=False) > 0, improvement(0.30, 0.25, "log_loss", relative=False) < 0
(True, True)
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Callable, Literal

import numpy as np

from ct_assets.core.data import schema

if TYPE_CHECKING:
    import pandas as pd

Metric = Literal["auc", "log_loss", "accuracy"]
METRICS: tuple[str, ...] = ("auc", "log_loss", "accuracy")
_PROBA_EPS = 1e-7


def higher_is_better(metric: str) -> bool:
    return metric != "log_loss"


def check_metric(metric: str) -> None:
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {METRICS}, got {metric!r}")


def binary_labels(y_true: Any) -> np.ndarray:
    """``y_true`` as an int64 0/1 vector; ValueError when empty, missing or not binary."""
    y = np.asarray(y_true, dtype="float64").reshape(-1)
    if len(y) == 0:
        raise ValueError("y_true is empty")
    if np.isnan(y).any() or not np.isin(y, (0.0, 1.0)).all():
        raise ValueError("y_true must be 0/1 without missing values")
    return y.astype(np.int64)


def probabilities(scores: Any, n: int, what: str) -> np.ndarray:
    """``scores`` as a float vector of ``n`` probabilities; ValueError naming ``what`` otherwise."""
    s = np.asarray(scores, dtype="float64").reshape(-1)
    if len(s) != n:
        raise ValueError(f"{what}: {len(s)} scores for {n} labels")
    if np.isnan(s).any() or (s < 0).any() or (s > 1).any():
        raise ValueError(f"{what}: scores must be probabilities in [0, 1] without NaN")
    return s


def roc_auc(y: np.ndarray, p: np.ndarray) -> float:
    """ROC AUC via the rank-sum (Mann-Whitney) identity, ties averaged; NaN with a single class.

    Same value as ``sklearn.metrics.roc_auc_score`` at about half the cost, which matters inside the
    bootstrap loop.
    """
    from scipy.stats import rankdata

    n_pos = int(y.sum())
    n_neg = len(y) - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = rankdata(p)
    return float((ranks[y == 1].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def log_loss(y: np.ndarray, p: np.ndarray) -> float:
    clipped = np.clip(p, _PROBA_EPS, 1 - _PROBA_EPS)
    return float(-np.mean(y * np.log(clipped) + (1 - y) * np.log(1 - clipped)))


def accuracy(y: np.ndarray, p: np.ndarray) -> float:
    return float(np.mean((p >= 0.5) == (y == 1)))


def metric_fn(metric: str) -> Callable[[np.ndarray, np.ndarray], float]:
    """metric(y, p) -> value; NaN where undefined (AUC on a single class)."""
    return {"auc": roc_auc, "log_loss": log_loss, "accuracy": accuracy}[metric]


def improvement(candidate: float, production: float, metric: str, relative: bool) -> float:
    """How much better the candidate is (positive = better), absolute or relative to production."""
    gain = candidate - production if higher_is_better(metric) else production - candidate
    if not relative:
        return gain
    return gain / abs(production) if production != 0 else (0.0 if gain == 0 else math.copysign(math.inf, gain))


def bootstrap_improvements(y: np.ndarray, candidate: np.ndarray, production: np.ndarray, metric: str,
                           relative: bool, n_boot: int, seed: int) -> list[float]:
    """``improvement`` on ``n_boot`` paired resamples of the rows; resamples where it is undefined are dropped."""
    score = metric_fn(metric)
    rng = np.random.default_rng(seed)
    boot: list[float] = []
    for _ in range(n_boot):
        index = rng.integers(0, len(y), len(y))
        c, p = score(y[index], candidate[index]), score(y[index], production[index])
        if not (math.isnan(c) or math.isnan(p)):
            boot.append(improvement(c, p, metric, relative))
    return boot


def percentile_interval(sample: list[float], confidence: float) -> tuple[float, float]:
    """The central ``confidence`` interval of a bootstrap sample."""
    alpha = (1 - confidence) / 2
    low, high = np.quantile(sample, [alpha, 1 - alpha])
    return float(low), float(high)


def expected_calibration_error(y_true: Any, scores: Any, n_bins: int = 10) -> float:
    """ECE over ``n_bins`` equal-width probability bins: sum of |observed rate - mean score| weighted by bin size."""
    if n_bins < 1:
        raise ValueError(f"n_bins must be >= 1, got {n_bins}")
    y = binary_labels(y_true)
    p = probabilities(scores, len(y), "scores")
    bins = np.minimum((p * n_bins).astype(np.int64), n_bins - 1)
    counts = np.bincount(bins, minlength=n_bins)
    observed = np.bincount(bins, weights=y, minlength=n_bins)
    predicted = np.bincount(bins, weights=p, minlength=n_bins)
    filled = counts > 0
    return float(np.sum(np.abs(observed[filled] - predicted[filled])) / len(y))


def single_feature_aucs(features: pd.DataFrame, labels: Any,
                        columns: tuple[str, ...] = schema.FEATURE_NUMERIC) -> dict[str, float]:
    """Orientation-free AUC (``max(auc, 1 - auc)``) of each numeric column alone against the label.

    0.5 means no association, 1.0 means the column separates the classes perfectly. Rows where the
    column is missing are ignored; a column with no usable values scores 0.5.
    """
    import pandas as pd
    missing = [c for c in columns if c not in features.columns]
    if missing:
        raise ValueError(f"features are missing columns {missing}")
    y = binary_labels(labels)
    if len(y) != len(features):
        raise ValueError(f"{len(y)} labels for {len(features)} feature rows")
    if len(np.unique(y)) < 2:
        raise ValueError("single-feature AUC needs both classes in the labels")
    result: dict[str, float] = {}
    for column in columns:
        values = pd.to_numeric(features[column], errors="coerce").to_numpy(dtype="float64")
        usable = np.isfinite(values)
        if len(np.unique(y[usable])) < 2:
            result[column] = 0.5
            continue
        auc = roc_auc(y[usable], values[usable])
        result[column] = max(auc, 1.0 - auc)
    return result
