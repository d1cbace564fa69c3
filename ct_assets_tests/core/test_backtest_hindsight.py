"""The hindsight-best schedule: dynamic programming checked against brute force."""

import itertools

import numpy as np
import pytest

from ct_assets.core.backtest.hindsight import (
    best_schedules,
    hindsight_report,
    schedule_mean,
    skipped_columns,
)


def random_matrix(rng: np.random.Generator, n: int, unavailable: tuple[int, ...] = ()) -> np.ndarray:
    matrix = np.triu(rng.uniform(0.5, 1.0, size=(n, n)))
    matrix[np.tril_indices(n, -1)] = np.nan
    for row in unavailable:
        matrix[row, :] = np.nan
    return matrix


def brute_force(matrix: np.ndarray, k: int, available: list[int], higher_is_better: bool = True) -> float:
    pick = max if higher_is_better else min
    return pick(schedule_mean(matrix, switches) for switches in itertools.combinations(available, k))


@pytest.mark.parametrize("seed", range(6))
def test_dynamic_programming_matches_brute_force(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(4, 9))
    unavailable = tuple(int(r) for r in rng.choice(np.arange(1, n), size=seed % 3, replace=False))
    matrix = random_matrix(rng, n, unavailable)
    available = [r for r in range(1, n) if r not in unavailable]
    for higher_is_better in (True, False):
        schedules = best_schedules(matrix, max_k=10, higher_is_better=higher_is_better)
        assert [s.k for s in schedules] == list(range(1, min(10, len(available)) + 1))
        for schedule in schedules:
            assert len(schedule.switch_batches) == schedule.k
            assert set(schedule.switch_batches) <= set(available)
            assert schedule.mean_metric == pytest.approx(schedule_mean(matrix, schedule.switch_batches))
            assert schedule.mean_metric == pytest.approx(
                brute_force(matrix, schedule.k, available, higher_is_better))


def test_the_best_switch_lands_on_the_change():
    # Model 0 is good before batch 3 and bad after; models from batch 3 on are good after the change.
    n = 6
    matrix = np.full((n, n), np.nan)
    for row in range(n):
        for column in range(row, n):
            new_regime = column >= 3
            matrix[row, column] = 0.9 if (row >= 3) == new_regime or row == 0 and not new_regime else 0.5
    (one,) = best_schedules(matrix, max_k=1)
    assert one.switch_batches == (3,)
    assert one.mean_metric == pytest.approx(0.9)


def test_invalid_matrices_are_rejected():
    with pytest.raises(ValueError, match="square"):
        best_schedules(np.ones((2, 3)))
    partial = random_matrix(np.random.default_rng(0), 4)
    partial[2, 3] = np.nan
    with pytest.raises(ValueError, match="partly undefined"):
        best_schedules(partial)
    first_missing = random_matrix(np.random.default_rng(0), 4, unavailable=(0,))
    with pytest.raises(ValueError, match="row 0"):
        best_schedules(first_missing)
    with pytest.raises(ValueError, match="max_k"):
        best_schedules(random_matrix(np.random.default_rng(0), 3), max_k=0)
    with pytest.raises(ValueError, match="available rows"):
        schedule_mean(random_matrix(np.random.default_rng(0), 4, unavailable=(2,)), (2,))


def test_report_measures_the_policy_against_the_schedule_with_as_many_retrains():
    matrix = random_matrix(np.random.default_rng(3), 7)
    report = hindsight_report(matrix, first_batch=2, policy_mean=0.7, policy_updates=2, max_k=4)
    assert [s.k for s in report.schedules] == [1, 2, 3, 4]
    assert report.gap_at_policy_k == pytest.approx(report.schedules[1].mean_metric - 0.7)
    assert report.gap_to_best == pytest.approx(max(s.mean_metric for s in report.schedules) - 0.7)
    assert report.best is not None and report.best.mean_metric == max(s.mean_metric for s in report.schedules)
    lower = hindsight_report(matrix, 2, policy_mean=0.7, policy_updates=0, max_k=3, higher_is_better=False)
    assert lower.gap_at_policy_k == pytest.approx(0.7 - lower.schedules[0].mean_metric)
    assert hindsight_report(matrix, 2, None, 0).gap_to_best is None


def test_a_batch_without_a_defined_metric_is_skipped_not_the_whole_report():
    matrix = random_matrix(np.random.default_rng(3), 6)
    matrix[:, 2] = np.nan  # AUC on a single-class batch: undefined for every model
    assert skipped_columns(matrix) == (2,)
    kept = [0, 1, 3, 4, 5]
    serving = np.zeros(6, dtype=int)
    serving[4:] = 4
    expected = np.mean([matrix[serving[c], c] for c in kept])
    assert schedule_mean(matrix, (4,)) == pytest.approx(expected)
    schedules = best_schedules(matrix, max_k=5)
    assert [s.k for s in schedules] == [1, 2, 3, 4, 5]  # a model starting at the skipped batch is still usable
    for schedule in schedules:
        assert schedule.mean_metric == pytest.approx(brute_force(matrix, schedule.k, [1, 2, 3, 4, 5]))
    report = hindsight_report(matrix, first_batch=2, policy_mean=0.7, policy_updates=1, max_k=3)
    assert report.skipped_batches == (4,) and report.gap_at_policy_k == pytest.approx(schedules[0].mean_metric - 0.7)
    with pytest.raises(ValueError, match="no batch"):
        best_schedules(np.full((3, 3), np.nan))
