"""The hindsight-best retraining schedule: the upper reference for *when* to retrain.

Given ``matrix[r, j]``, the metric on evaluated batch ``j`` of the model that starts serving at
batch ``r`` (row 0: the warm-up model, serving from the first batch; row ``r >= 1``: the model
retrained right before batch ``r``), a schedule of ``k`` retrain points ``r_1 < ... < r_k`` serves
batch ``j`` with the newest model started at or before ``j``. :func:`best_schedules` finds, for each
``k``, the schedule with the best mean metric by dynamic programming in ``O(k n^2)``. A batch whose
metric is undefined for every model (AUC on a single class: an all-NaN column) is skipped: the mean is
over the other batches, as the strategies' means are.

The backtest fills the matrix with the ``always_retrain`` models (trained anyway), so the
reference costs no extra training.

Example::

    >>> import numpy as np
    >>> a = np.array([[0.9, 0.6, 0.6], [np.nan, 0.9, 0.9], [np.nan, np.nan, 0.95]])
    >>> [(s.k, s.switch_batches, round(s.mean_metric, 3)) for s in best_schedules(a, max_k=2)]
    [(1, (1,), 0.9), (2, (1, 2), 0.917)]
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class HindsightSchedule:
    """The best schedule with exactly ``k`` retrain points; ``switch_batches`` are matrix columns
    (the batches where a new model starts serving)."""

    k: int
    switch_batches: tuple[int, ...]
    mean_metric: float


def skipped_columns(matrix: np.ndarray) -> tuple[int, ...]:
    """Columns (batches) no model has a metric on: skipped by the schedules.

    >>> skipped_columns(np.array([[0.8, np.nan, 0.7], [np.nan, np.nan, 0.9], [np.nan, np.nan, 0.9]]))
    (1,)
    """
    undefined = ~np.isfinite(np.asarray(matrix, dtype=np.float64))
    return tuple(int(c) for c in np.flatnonzero(undefined.all(axis=0)))


def _validated(matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    """The matrix as float64 (skipped columns zeroed), which rows (models) are available, and how many
    batches are scored."""
    values = np.asarray(matrix, dtype=np.float64)
    if values.ndim != 2 or values.shape[0] != values.shape[1] or values.shape[0] < 1:
        raise ValueError(f"matrix must be square (models x batches), got shape {values.shape}")
    n = values.shape[0]
    skipped = list(skipped_columns(values))
    if len(skipped) == n:
        raise ValueError("no batch has a defined metric")
    scored = np.ones(n, dtype=bool)
    scored[skipped] = False
    upper = np.triu(np.ones((n, n), dtype=bool))
    finite = np.isfinite(values) | ~upper | ~scored
    available = finite.all(axis=1)
    if not available[0]:
        raise ValueError("row 0 (the model serving from the first batch) must be finite on every scored batch")
    partial = ~available & (np.isfinite(values) & upper).any(axis=1)
    if partial.any():
        raise ValueError(f"rows {np.flatnonzero(partial).tolist()} are partly undefined on or after their "
                         "first batch: a model is either available (finite from its batch on) or all NaN")
    values = np.where(scored, values, 0.0)  # a skipped batch adds nothing to any schedule's total
    return values, available, n - len(skipped)


def schedule_mean(matrix: np.ndarray, switch_batches: tuple[int, ...]) -> float:
    """Mean metric over the scored batches of serving each with the newest model started at or before it.

    >>> round(schedule_mean(np.array([[0.8, 0.5], [np.nan, 0.9]]), (1,)), 3)
    0.85
    """
    values, available, scored = _validated(matrix)
    n = values.shape[0]
    switches = sorted(set(switch_batches))
    if any(not 1 <= s < n or not available[s] for s in switches):
        raise ValueError(f"switch batches {switch_batches} must be available rows in 1..{n - 1}")
    serving = np.zeros(n, dtype=np.int64)
    for switch in switches:
        serving[switch:] = switch
    return float(values[serving, np.arange(n)].sum() / scored)


def best_schedules(matrix: np.ndarray, max_k: int = 10, higher_is_better: bool = True) -> tuple[HindsightSchedule, ...]:
    """For k = 1..max_k (as far as there are models), the schedule of k retrain points with the best mean.

    ``best[c][r]`` is the best total over batches ``r..n-1`` when model ``r`` starts serving at ``r``
    and ``c`` more switches follow; ``best[c][r] = max_{r' > r} sum(matrix[r, r:r']) + best[c-1][r']``.
    """
    if max_k < 1:
        raise ValueError(f"max_k must be >= 1, got {max_k}")
    values, available, scored = _validated(matrix)
    sign = 1.0 if higher_is_better else -1.0
    n = values.shape[0]
    # prefix[r, e] = sum of sign * values[r, r:e] (columns before r are never used).
    upper = np.where(np.triu(np.ones((n, n), dtype=bool)), sign * np.nan_to_num(values, nan=0.0), 0.0)
    prefix = np.concatenate([np.zeros((n, 1)), np.cumsum(upper, axis=1)], axis=1)
    max_feasible = min(max_k, int(available[1:].sum()))
    best = np.full((max_feasible + 1, n), -np.inf)
    choice = np.full((max_feasible + 1, n), -1, dtype=np.int64)
    best[0, available] = prefix[available, n]
    for c in range(1, max_feasible + 1):
        for r in np.flatnonzero(available):
            if r == n - 1:
                continue
            nxt = np.arange(r + 1, n)
            totals = prefix[r, nxt] + best[c - 1, nxt]
            position = int(np.argmax(totals))
            if np.isfinite(totals[position]):
                best[c, r], choice[c, r] = totals[position], nxt[position]
    schedules = []
    # With k available models after row 0, some k-point schedule exists, so every k here is feasible.
    for k in range(1, max_feasible + 1):
        switches, r = [], 0
        for c in range(k, 0, -1):
            r = int(choice[c, r])
            switches.append(r)
        schedules.append(HindsightSchedule(k, tuple(switches), float(sign * best[k, 0] / scored)))
    return tuple(schedules)


@dataclass(frozen=True)
class HindsightReport:
    """Hindsight-best schedules and how far the policy is from them.

    ``first_batch`` is the stream batch of matrix column 0, so a schedule's retrain happens at stream
    batch ``first_batch + switch - 1`` and serves from ``first_batch + switch``. ``policy_updates`` is
    the number of model changes the policy made (retrains + fine-tunes that were promoted and kept);
    ``gap_at_policy_k`` is the best mean with that many retrains (clamped to the computed range)
    minus the policy's mean, ``gap_to_best`` the same against the best over every k (positive: the
    hindsight schedule is better). ``retrain_train_gflops`` is the mean deterministic cost of one of the
    retrains the schedules reuse, ``retrain_cpu_seconds`` its measured CPU time (not part of equality).
    ``skipped_batches`` are the stream batches without a defined metric, left out of every mean.
    """

    first_batch: int
    schedules: tuple[HindsightSchedule, ...]
    policy_mean: float | None
    policy_updates: int
    gap_at_policy_k: float | None
    gap_to_best: float | None
    higher_is_better: bool = True
    skipped_batches: tuple[int, ...] = ()
    retrain_train_gflops: float = 0.0
    retrain_cpu_seconds: float = field(default=0.0, compare=False)

    @property
    def best(self) -> HindsightSchedule | None:
        if not self.schedules:
            return None
        pick = max if self.higher_is_better else min
        return pick(self.schedules, key=lambda s: s.mean_metric)


def hindsight_report(matrix: np.ndarray, first_batch: int, policy_mean: float | None, policy_updates: int,
                     max_k: int = 10, higher_is_better: bool = True, retrain_train_gflops: float = 0.0,
                     retrain_cpu_seconds: float = 0.0) -> HindsightReport:
    """Best schedules for k = 1..max_k and the policy's distance from them (see :class:`HindsightReport`)."""
    schedules = best_schedules(matrix, max_k, higher_is_better)
    gap_at_k = gap_best = None
    if schedules and policy_mean is not None:
        sign = 1.0 if higher_is_better else -1.0
        at_k = schedules[min(max(policy_updates, 1), len(schedules)) - 1]
        pick = max if higher_is_better else min
        gap_at_k = sign * (at_k.mean_metric - policy_mean)
        gap_best = sign * (pick(s.mean_metric for s in schedules) - policy_mean)
    skipped = tuple(first_batch + column for column in skipped_columns(matrix))
    return HindsightReport(first_batch, schedules, policy_mean, policy_updates, gap_at_k, gap_best,
                           higher_is_better, skipped, retrain_train_gflops, retrain_cpu_seconds)
