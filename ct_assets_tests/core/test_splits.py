import numpy as np
import pytest

from ct_assets.core.data.splits import holdout_mask


def test_same_ids_get_the_same_assignment_in_any_order_and_batch() -> None:
    ids = [f"o-{i}" for i in range(5000)]
    full = holdout_mask(ids)
    shuffled_order = np.random.default_rng(0).permutation(len(ids))
    reordered = holdout_mask([ids[i] for i in shuffled_order])
    assert np.array_equal(reordered, full[shuffled_order])
    # A later day's batch containing some of the same ids assigns them identically.
    assert np.array_equal(holdout_mask(ids[1000:1200]), full[1000:1200])


def test_fraction_is_respected_and_splits_are_nested() -> None:
    ids = [f"o-{i}" for i in range(20_000)]
    small, large = holdout_mask(ids, fraction=0.1), holdout_mask(ids, fraction=0.2)
    assert 0.18 < large.mean() < 0.22
    assert 0.08 < small.mean() < 0.12
    assert not (small & ~large).any()  # raising the fraction only adds events


def test_salt_draws_an_independent_split_and_ids_of_any_type_work() -> None:
    ids = list(range(10_000))
    a, b = holdout_mask(ids, salt="a"), holdout_mask(ids, salt="b")
    overlap = (a & b).mean()
    assert 0.02 < overlap < 0.06  # independent 20% splits overlap ~4%
    assert holdout_mask([42], salt="a")[0] == holdout_mask(["42"], salt="a")[0]


@pytest.mark.parametrize("fraction", [0.0, 1.0, -0.1, 1.5])
def test_fraction_out_of_range_is_refused(fraction: float) -> None:
    with pytest.raises(ValueError, match="fraction"):
        holdout_mask(["a"], fraction=fraction)


def test_missing_ids_are_refused() -> None:
    with pytest.raises(ValueError, match="missing"):
        holdout_mask(["a", None])
