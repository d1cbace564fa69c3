"""How a backtest scores a batch: the per-batch metric, accuracy, and which direction is better."""

from __future__ import annotations

import math

import numpy as np

from ct_assets.core.release.metrics import roc_auc

METRICS: tuple[str, ...] = ("auc", "accuracy", "log_loss")
_LOG_LOSS_EPS = 1e-7


def higher_is_better(metric: str) -> bool:
    return metric != "log_loss"


def batch_metric(metric: str, labels: np.ndarray, scores: np.ndarray) -> float | None:
    """``metric`` of ``scores`` against 0/1 ``labels``; None when undefined (AUC on a single class).

    >>> batch_metric("auc", np.array([0, 1, 1]), np.array([0.2, 0.7, 0.9]))
    1.0
    >>> batch_metric("auc", np.array([1, 1]), np.array([0.2, 0.7])) is None
    True
    """
    if metric == "auc":
        value = roc_auc(labels, scores)
        return None if math.isnan(value) else value
    if metric == "accuracy":
        return accuracy(labels, scores)
    if metric == "log_loss":
        clipped = np.clip(scores, _LOG_LOSS_EPS, 1 - _LOG_LOSS_EPS)
        return float(-np.mean(labels * np.log(clipped) + (1 - labels) * np.log(1 - clipped)))
    raise ValueError(f"metric must be one of {METRICS}, got {metric!r}")


def accuracy(labels: np.ndarray, scores: np.ndarray) -> float:
    return float(np.mean((scores >= 0.5) == (labels == 1)))
