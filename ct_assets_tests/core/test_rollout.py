"""Staged rollout in a real DuckDB file: traffic split, live comparison, step advance and rollback verdicts."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import duckdb
import numpy as np
import pytest

from ct_assets.core.data.splits import holdout_mask
from ct_assets.core.ops.alerts import LogNotifier
from ct_assets.core.release.deployment import promote, roll_back
from ct_assets.core.release.registry import (
    ModelRecord,
    ensure_registry_tables,
    get_production,
    register_candidate,
)
from ct_assets.core.release.rollout import (
    RolloutPlan,
    advance_rollout,
    current_traffic_share,
    start_rollout,
    traffic_split,
)
from ct_assets.core.release.rollout_comparison import LiveComparison, compare_live
from ct_assets.core.release.rollout_store import active_rollout, get_rollout, list_rollout_steps

D0 = dt.date(2024, 5, 1)


def day(offset: int) -> str:
    return str(D0 + dt.timedelta(days=offset))


def live_data(n: int = 2_000, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Labels, a good previous model, an equally good new model and a degraded (uninformed) new model."""
    rng = np.random.default_rng(seed)
    signal = rng.normal(size=n)
    y = (rng.random(n) < 1.0 / (1.0 + np.exp(-(2.0 * signal - 2.0)))).astype(int)

    def model(noise: float) -> np.ndarray:
        return 1.0 / (1.0 + np.exp(-(2.0 * signal - 2.0 + rng.normal(scale=noise, size=n))))

    uninformed = 1.0 / (1.0 + np.exp(-rng.normal(size=n)))
    return y, model(0.3), model(0.3), uninformed


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    return live_data()


@pytest.fixture()
def con(tmp_path: Path) -> Iterator[duckdb.DuckDBPyConnection]:
    connection = duckdb.connect(str(tmp_path / "ct.duckdb"))
    ensure_registry_tables(connection)
    for model_id in ("m-a", "m-b", "m-c"):
        register_candidate(connection, ModelRecord(model_id=model_id, training_path="retrain"))
    yield connection
    connection.close()


def healthy(data: tuple[np.ndarray, ...]) -> LiveComparison:
    y, previous, new, _ = data
    return compare_live(y, new, previous, complaints_ratio=1.05)


def degraded(data: tuple[np.ndarray, ...]) -> LiveComparison:
    y, previous, _, uninformed = data
    return compare_live(y, uninformed, previous, complaints_ratio=1.0)


def test_plan_validation() -> None:
    assert RolloutPlan().steps == (0.01, 0.05, 0.25, 1.0)
    assert RolloutPlan(steps=(0.5, 1)).steps == (0.5, 1.0)
    for steps in ((), (0.1, 0.05, 1.0), (0.0, 1.0), (0.5, 0.9), (0.5, 1.5)):
        with pytest.raises(ValueError, match="rollout steps|last rollout step"):
            RolloutPlan(steps=steps)
    with pytest.raises(ValueError, match="days_per_step"):
        RolloutPlan(days_per_step=0)


def test_traffic_split_is_deterministic_monotone_and_close_to_the_share() -> None:
    ids = np.arange(1, 40_001)
    five = traffic_split(ids, 0.05, "ro-abc")
    assert five.mean() == pytest.approx(0.05, abs=0.005)
    assert np.array_equal(five, traffic_split(ids, 0.05, "ro-abc"))
    shuffled = np.random.default_rng(1).permutation(ids)
    assert set(shuffled[traffic_split(shuffled, 0.05, "ro-abc")]) == set(ids[five])  # per id, not per position
    quarter = traffic_split(ids, 0.25, "ro-abc")
    assert quarter.mean() == pytest.approx(0.25, abs=0.01) and not (five & ~quarter).any()  # a ramp only adds rows
    other_salt = traffic_split(ids, 0.25, "ro-def")
    assert (quarter != other_salt).mean() > 0.3
    # Independent of the holdout split: the new model does not serve only (or never) holdout rows.
    assert (quarter & holdout_mask(ids)).mean() == pytest.approx(0.25 * 0.2, abs=0.01)
    assert traffic_split(ids, 0.0, "ro-abc").sum() == 0 and traffic_split(ids, 1.0, "ro-abc").all()
    with pytest.raises(ValueError, match="traffic share"):
        traffic_split(ids, 1.5, "ro-abc")
    with pytest.raises(ValueError, match="salt"):
        traffic_split(ids, 0.5, "")


def test_compare_live_verdicts(data: tuple[np.ndarray, ...]) -> None:
    y, previous, new, uninformed = data
    ok = healthy(data)
    assert ok.verdict == "ok" and abs(ok.degradation) < 0.02 and ok.n_rows == len(y)
    assert ok.previous_value > 0.75 and ok.reason.startswith("new model holds up")

    bad = degraded(data)
    assert bad.verdict == "degraded" and bad.degradation > 0.2 and bad.ci_low > 0
    assert bad.reason.startswith("new model degraded: auc new") and "tolerance 0.0200" in bad.reason

    few = compare_live(y[:150], uninformed[:150], previous[:150], complaints_ratio=1.0)
    assert few.verdict == "insufficient_data" and "150 labelled rows < 200" in few.reason
    assert np.isnan(few.degradation) and few.to_dict()["degradation"] is None

    complaints = compare_live(y[:150], new[:150], previous[:150], complaints_ratio=2.4)
    assert complaints.verdict == "degraded" and "complaints 2.4x" in complaints.reason

    one_class = compare_live(np.zeros(300, dtype=int), new[:300], previous[:300], complaints_ratio=None)
    assert one_class.verdict == "insufficient_data" and "single class" in one_class.reason

    log_loss = compare_live(y, uninformed, previous, complaints_ratio=None, metric="log_loss")
    assert log_loss.verdict == "degraded" and log_loss.degradation > 0  # higher log-loss is worse
    # Within tolerance is not a rollback, however confident: a 0.5 tolerance swallows the drop.
    assert compare_live(y, uninformed, previous, 1.0, tolerance=0.5).verdict == "ok"

    with pytest.raises(ValueError, match="metric"):
        compare_live(y, new, previous, 1.0, metric="f1")
    with pytest.raises(ValueError, match="new_scores"):
        compare_live(y, new[:10], previous, 1.0)
    with pytest.raises(ValueError, match="complaints_ratio"):
        compare_live(y, new, previous, -1.0)


def test_a_healthy_model_ramps_step_by_step_and_completes(con: duckdb.DuckDBPyConnection,
                                                          data: tuple[np.ndarray, ...]) -> None:
    promote(con, "m-a", actor="test", reason="first model")
    promote(con, "m-b", actor="test", reason="gates passed")
    assert current_traffic_share(con, "m-a", day(0)) == 0.0  # no rollout yet: the production pointer decides
    record = start_rollout(con, "m-b", "m-a", RolloutPlan(), day=day(0))
    assert start_rollout(con, "m-b", "m-a", RolloutPlan(), day=day(0)) == record  # idempotent
    assert (record.status, record.traffic_share) == ("active", 0.01)

    live = healthy(data)
    assert advance_rollout(con, day(0), live).verdict == "hold"  # the first step has not lasted a day yet
    shares = []
    for offset in range(1, 5):
        step = advance_rollout(con, day(offset), live)
        again = advance_rollout(con, day(offset), live)  # a re-evaluated day does not advance twice
        assert again == step
        shares.append((step.verdict, step.traffic_share))
    assert shares == [("advance", 0.05), ("advance", 0.25), ("advance", 1.0), ("complete", 1.0)]
    assert get_rollout(con, record.rollout_id).status == "completed" and active_rollout(con) is None

    assert [current_traffic_share(con, "m-b", day(i)) for i in range(-1, 6)] == [0.0, 0.01, 0.05, 0.25, 1.0, 1.0, 1.0]
    assert current_traffic_share(con, "m-a", day(1)) == pytest.approx(0.95)
    assert current_traffic_share(con, "m-a", day(-1)) == 1.0 and current_traffic_share(con, "m-a", day(4)) == 0.0
    verdicts = [s.verdict for s in list_rollout_steps(con, record.rollout_id)]
    assert verdicts == ["start", "hold", "advance", "advance", "advance", "complete"]
    with pytest.raises(ValueError, match="no active rollout"):
        advance_rollout(con, day(6), live)


def test_a_degraded_model_gets_a_rollback_verdict(con: duckdb.DuckDBPyConnection,
                                                  data: tuple[np.ndarray, ...]) -> None:
    promote(con, "m-a", actor="test", reason="first model")
    promote(con, "m-b", actor="test", reason="gates passed")
    record = start_rollout(con, "m-b", "m-a", RolloutPlan(), day=day(0))
    assert advance_rollout(con, day(1), healthy(data)).traffic_share == 0.05
    assert advance_rollout(con, day(2), healthy(data)).verdict == "advance"

    step = advance_rollout(con, day(2), degraded(data))  # degradation seen later the same day still rolls back
    assert (step.verdict, step.traffic_share, step.model_id, step.previous_model_id) == ("rollback", 0.0, "m-b", "m-a")
    assert step.reason.startswith("roll back to m-a: new model degraded: auc")
    assert step.live is not None and step.live["verdict"] == "degraded"
    assert get_rollout(con, record.rollout_id).status == "rolled_back"
    assert current_traffic_share(con, "m-b", day(2)) == 0.0 and current_traffic_share(con, "m-a", day(2)) == 1.0
    assert current_traffic_share(con, "m-b", day(1)) == 0.05  # history is kept
    assert [s.verdict for s in list_rollout_steps(con, record.rollout_id)] == ["start", "advance", "advance", "rollback"]
    assert advance_rollout(con, day(2), healthy(data)) == step  # the day's verdict stands on re-evaluation
    # Acting on the verdict is the registry's pointer swap.
    roll_back(con, "sensor:rollout", step.reason, LogNotifier())
    assert get_production(con).model_id == "m-a"


def test_holds_wait_for_data_and_for_the_step_length(con: duckdb.DuckDBPyConnection,
                                                     data: tuple[np.ndarray, ...]) -> None:
    y, previous, new, _ = data
    record = start_rollout(con, "m-b", "m-a", RolloutPlan(steps=(0.1, 1.0), days_per_step=2), day=day(0))
    assert advance_rollout(con, day(1), healthy(data)).verdict == "hold"  # 1 of 2 days
    scarce = compare_live(y[:50], new[:50], previous[:50], complaints_ratio=1.0)
    held = advance_rollout(con, day(2), scarce)
    assert held.verdict == "hold" and "50 labelled rows" in held.reason and held.traffic_share == 0.1
    # Labels arrived later that day: the hold is re-judged and replaced.
    assert advance_rollout(con, day(2), healthy(data)).verdict == "advance"
    assert [s.verdict for s in list_rollout_steps(con, record.rollout_id)] == ["start", "hold", "advance"]
    with pytest.raises(ValueError, match="before the current step"):
        advance_rollout(con, day(1), healthy(data))


def test_starting_rollouts_supersedes_only_the_previous_models_ramp(con: duckdb.DuckDBPyConnection) -> None:
    first = start_rollout(con, "m-b", "m-a", day=day(0))
    with pytest.raises(ValueError, match="still active"):
        start_rollout(con, "m-c", "m-a", day=day(1))
    second = start_rollout(con, "m-c", "m-b", day=day(1))
    assert get_rollout(con, first.rollout_id).status == "superseded" and active_rollout(con) == second
    assert current_traffic_share(con, "m-a", day(1)) == 0.0
    assert current_traffic_share(con, "m-b", day(1)) == pytest.approx(0.99)
    assert current_traffic_share(con, "m-c", day(1)) == 0.01
    with pytest.raises(ValueError, match="no previous model"):
        start_rollout(con, "m-a", None, day=day(2))
    with pytest.raises(ValueError, match="over itself"):
        start_rollout(con, "m-a", "m-a", day=day(2))
    with pytest.raises(ValueError, match="ISO date"):
        start_rollout(con, "m-c", "m-b", day="May 1")


def test_readers_on_an_empty_read_only_database(tmp_path: Path) -> None:
    path = tmp_path / "empty.duckdb"
    duckdb.connect(str(path)).close()
    with duckdb.connect(str(path), read_only=True) as con:
        assert active_rollout(con) is None and list_rollout_steps(con, "ro-x") == []
        assert current_traffic_share(con, "m-a", day(0)) == 0.0
