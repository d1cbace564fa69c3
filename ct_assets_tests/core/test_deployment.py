"""The production pointer (core/release/deployment.py) on a real DuckDB file: every move, its
deployments row, its rollout record and alert, and the stale-verdict rule."""

# Postponed annotations: see test_registry.py (nanobind "leaked" reports once torch is loaded).
from __future__ import annotations

from collections.abc import Iterator
from datetime import date, datetime
from pathlib import Path

import duckdb
import pytest

from ct_assets.core.ops.alerts import LogNotifier, list_alerts
from ct_assets.core.release.deployment import (
    PointerRequest,
    approve,
    choose_pointer_move,
    move_production_pointer,
    promote,
    promote_candidate,
    reject,
    reject_candidate,
    restore,
    roll_back,
)
from ct_assets.core.release.registry import (
    ModelRecord,
    ensure_registry_tables,
    get_model,
    get_production,
    list_deployments,
    list_models,
    register_candidate,
)
from ct_assets.core.release.rollout import RolloutPlan
from ct_assets.core.release.rollout_store import active_rollout

NOTIFIER = LogNotifier()
PASSED = [{"name": "holdout", "passed": True, "severity": "error"},
          {"name": "calibration", "passed": False, "severity": "warning"}]
FAILED = [{"name": "holdout", "passed": True, "severity": "error"},
          {"name": "fairness", "passed": False, "severity": "error"}]


@pytest.fixture()
def con(tmp_path: Path) -> Iterator[duckdb.DuckDBPyConnection]:
    connection = duckdb.connect(str(tmp_path / "ct.duckdb"))
    ensure_registry_tables(connection)
    yield connection
    connection.close()


def candidate(model_id: str, minute: int = 0, **overrides: object) -> ModelRecord:
    values: dict[str, object] = dict(
        model_id=model_id, training_path="retrain", created_at=datetime(2026, 1, 2, 3, minute),
        trigger="drift", trigger_reason="sensor_signal KS p < 0.01", data_window_start=date(2026, 1, 1),
        data_window_end=date(2026, 1, 14))
    values.update(overrides)
    return ModelRecord(**values)  # type: ignore[arg-type]


def production_ids(con: duckdb.DuckDBPyConnection) -> list[str]:
    return [row[0] for row in con.execute("SELECT model_id FROM model_registry WHERE status = 'production'").fetchall()]


def serving_first(con: duckdb.DuckDBPyConnection) -> None:
    """m-aaaaaaaaaaaa serves; m-bbbbbbbbbbbb passed its gates, m-cccccccccccc failed one."""
    register_candidate(con, candidate("m-aaaaaaaaaaaa", minute=1, gate_results=PASSED))
    register_candidate(con, candidate("m-bbbbbbbbbbbb", minute=2, gate_results=PASSED))
    register_candidate(con, candidate("m-cccccccccccc", minute=3, gate_results=FAILED))
    promote(con, "m-aaaaaaaaaaaa", actor="bootstrap", reason="first model")


def test_promote_swaps_the_pointer_and_logs_it(con: duckdb.DuckDBPyConnection) -> None:
    register_candidate(con, candidate("m-aaaaaaaaaaaa", minute=1))
    register_candidate(con, candidate("m-bbbbbbbbbbbb", minute=2, training_path="fine_tune",
                                      parent_model_id="m-aaaaaaaaaaaa"))
    first = promote(con, "m-aaaaaaaaaaaa", actor="bootstrap", reason="first model")
    assert first is not None and first.previous_model_id is None
    second = promote(con, "m-bbbbbbbbbbbb", actor="sensor:drift", reason="holdout +2% AUC")
    assert second is not None and second.previous_model_id == "m-aaaaaaaaaaaa"

    assert production_ids(con) == ["m-bbbbbbbbbbbb"]
    assert get_production(con).model_id == "m-bbbbbbbbbbbb"  # type: ignore[union-attr]
    assert get_model(con, "m-aaaaaaaaaaaa").status == "retired"  # type: ignore[union-attr]
    assert [(d.action, d.model_id, d.actor) for d in list_deployments(con)] == [
        ("promote", "m-aaaaaaaaaaaa", "bootstrap"), ("promote", "m-bbbbbbbbbbbb", "sensor:drift")]
    assert promote(con, "m-bbbbbbbbbbbb", actor="sensor:drift", reason="again") is None  # already serving
    assert len(list_deployments(con)) == 2
    assert [m.model_id for m in list_models(con)] == ["m-bbbbbbbbbbbb", "m-aaaaaaaaaaaa"]
    assert [m.model_id for m in list_models(con, status="retired")] == ["m-aaaaaaaaaaaa"]


def test_promote_refuses_unknown_and_rejected_models(con: duckdb.DuckDBPyConnection) -> None:
    register_candidate(con, candidate("m-aaaaaaaaaaaa"))
    with pytest.raises(ValueError, match="unknown model id 'm-nope'"):
        promote(con, "m-nope", actor="me", reason="why not")
    reject(con, "m-aaaaaaaaaaaa", reason="leakage gate failed: sensor_signal AUC 1.0")
    with pytest.raises(ValueError, match="m-aaaaaaaaaaaa was rejected.*leakage"):
        promote(con, "m-aaaaaaaaaaaa", actor="me", reason="override")
    assert get_production(con) is None
    with pytest.raises(ValueError, match="reason"):
        promote(con, "m-aaaaaaaaaaaa", actor="me", reason=" ")


def test_a_failure_inside_the_promotion_transaction_leaves_the_pointer_unchanged(
        con: duckdb.DuckDBPyConnection) -> None:
    register_candidate(con, candidate("m-aaaaaaaaaaaa", minute=1))
    register_candidate(con, candidate("m-bbbbbbbbbbbb", minute=2))
    promote(con, "m-aaaaaaaaaaaa", actor="bootstrap", reason="first model")
    # The deployments insert is the transaction's last statement; without the table it fails after
    # both status updates have run.
    con.execute("ALTER TABLE deployments RENAME TO deployments_moved")
    with pytest.raises(duckdb.CatalogException):
        promote(con, "m-bbbbbbbbbbbb", actor="sensor:drift", reason="better")
    assert production_ids(con) == ["m-aaaaaaaaaaaa"]
    assert get_model(con, "m-bbbbbbbbbbbb").status == "staging"  # type: ignore[union-attr]
    con.execute("ALTER TABLE deployments_moved RENAME TO deployments")
    promote(con, "m-bbbbbbbbbbbb", actor="sensor:drift", reason="better")
    assert production_ids(con) == ["m-bbbbbbbbbbbb"]


def test_rollback_walks_back_through_the_promotion_history(con: duckdb.DuckDBPyConnection) -> None:
    for minute, model_id in enumerate(["m-aaaaaaaaaaaa", "m-bbbbbbbbbbbb", "m-cccccccccccc"]):
        register_candidate(con, candidate(model_id, minute=minute))
    with pytest.raises(ValueError, match="no model is in production"):
        roll_back(con, "oncall", "nothing serves", NOTIFIER)
    promote(con, "m-aaaaaaaaaaaa", actor="bootstrap", reason="first")
    with pytest.raises(ValueError, match="no previous production model"):
        roll_back(con, "oncall", "degraded", NOTIFIER)
    promote(con, "m-bbbbbbbbbbbb", actor="auto", reason="better")
    promote(con, "m-cccccccccccc", actor="auto", reason="better still")

    back = roll_back(con, "sensor:rollback", "live AUC fell 0.80 -> 0.70", NOTIFIER)
    assert (back.action, back.model_id, back.previous_model_id) == ("rollback", "m-bbbbbbbbbbbb", "m-cccccccccccc")
    assert production_ids(con) == ["m-bbbbbbbbbbbb"]
    rolled_back = get_model(con, "m-cccccccccccc")
    assert rolled_back.status == "rejected" and "live AUC fell" in rolled_back.status_reason  # type: ignore[union-attr]
    with pytest.raises(ValueError, match="rejected"):
        promote(con, "m-cccccccccccc", actor="auto", reason="retry")

    roll_back(con, "oncall", "b is bad too", NOTIFIER)
    assert production_ids(con) == ["m-aaaaaaaaaaaa"]
    with pytest.raises(ValueError, match="no previous production model"):
        roll_back(con, "oncall", "once more", NOTIFIER)
    assert [d.action for d in list_deployments(con)] == ["promote", "promote", "promote", "rollback", "rollback"]


def test_rollback_refuses_to_restore_a_rejected_model(con: duckdb.DuckDBPyConnection) -> None:
    register_candidate(con, candidate("m-aaaaaaaaaaaa", minute=1))
    register_candidate(con, candidate("m-bbbbbbbbbbbb", minute=2))
    promote(con, "m-aaaaaaaaaaaa", actor="bootstrap", reason="first")
    promote(con, "m-bbbbbbbbbbbb", actor="auto", reason="better")
    reject(con, "m-aaaaaaaaaaaa", reason="found a leak in its training data")
    with pytest.raises(ValueError, match="cannot roll back to m-aaaaaaaaaaaa: it was rejected"):
        roll_back(con, "oncall", "degraded", NOTIFIER)
    assert production_ids(con) == ["m-bbbbbbbbbbbb"]


def test_reject_semantics(con: duckdb.DuckDBPyConnection) -> None:
    register_candidate(con, candidate("m-aaaaaaaaaaaa", minute=1))
    register_candidate(con, candidate("m-bbbbbbbbbbbb", minute=2))
    promote(con, "m-aaaaaaaaaaaa", actor="bootstrap", reason="first")
    with pytest.raises(ValueError, match="in production; roll it back"):
        reject(con, "m-aaaaaaaaaaaa", reason="no")
    with pytest.raises(ValueError, match="unknown model"):
        reject(con, "m-nope", reason="no")
    logged = reject(con, "m-bbbbbbbbbbbb", reason="fairness gate failed", actor="gate:fairness")
    assert logged is not None and (logged.action, logged.actor) == ("reject", "gate:fairness")
    assert reject(con, "m-bbbbbbbbbbbb", reason="again") is None
    assert get_model(con, "m-bbbbbbbbbbbb").status_reason == "fairness gate failed"  # type: ignore[union-attr]
    assert production_ids(con) == ["m-aaaaaaaaaaaa"]


def test_exactly_one_production_model_through_a_sequence_of_operations(con: duckdb.DuckDBPyConnection) -> None:
    ids = [f"m-{c * 12}" for c in "abcdef"]
    for minute, model_id in enumerate(ids):
        register_candidate(con, candidate(model_id, minute=minute))
    promote(con, ids[0], actor="bootstrap", reason="first")
    for step, model_id in enumerate(ids[1:], start=1):
        promote(con, model_id, actor="auto", reason=f"step {step}")
        assert len(production_ids(con)) == 1
        if step % 2 == 0:
            roll_back(con, "auto", f"degraded at step {step}", NOTIFIER)
            assert len(production_ids(con)) == 1
    assert production_ids(con) == [ids[-1]]


def test_restore_returns_to_a_named_earlier_model(con: duckdb.DuckDBPyConnection) -> None:
    for minute, model_id in enumerate(("m-aaaaaaaaaaaa", "m-bbbbbbbbbbbb", "m-cccccccccccc"), start=1):
        register_candidate(con, candidate(model_id, minute=minute))
        promote(con, model_id, actor="test", reason="next")
    with pytest.raises(ValueError, match="already in production"):
        restore(con, "m-cccccccccccc", actor="online-gates", reason="degraded")
    deployment = restore(con, "m-aaaaaaaaaaaa", actor="online-gates", reason="chain degraded")
    assert (deployment.model_id, deployment.previous_model_id, deployment.action) == (
        "m-aaaaaaaaaaaa", "m-cccccccccccc", "rollback")
    assert get_production(con).model_id == "m-aaaaaaaaaaaa"
    assert get_model(con, "m-cccccccccccc").status == "rejected"
    with pytest.raises(ValueError, match="only a model that served before"):
        restore(con, "m-cccccccccccc", actor="online-gates", reason="again")



def test_promote_candidate_promotes_a_gated_candidate_and_starts_its_rollout(con: duckdb.DuckDBPyConnection) -> None:
    serving_first(con)
    outcome = promote_candidate(con, "m-bbbbbbbbbbbb", "dagster:drift", False, NOTIFIER, RolloutPlan())
    assert (outcome.action, outcome.serving_model_id, outcome.reason) == ("promoted", "m-bbbbbbbbbbbb", "gates passed")
    assert list_deployments(con)[-1].reason == "gates passed (drift: sensor_signal KS p < 0.01)"
    rollout = active_rollout(con)
    assert rollout is not None and (rollout.model_id, rollout.previous_model_id) == ("m-bbbbbbbbbbbb", "m-aaaaaaaaaaaa")
    again = promote_candidate(con, "m-bbbbbbbbbbbb", "dagster:drift", False, NOTIFIER, RolloutPlan())
    assert (again.action, again.reason) == ("kept", "already serving")


def test_promote_candidate_keeps_a_failed_or_ungated_candidate(con: duckdb.DuckDBPyConnection) -> None:
    serving_first(con)
    register_candidate(con, candidate("m-dddddddddddd", minute=4))
    for model_id, failed in (("m-cccccccccccc", "['fairness']"), ("m-dddddddddddd", "['not evaluated']")):
        outcome = promote_candidate(con, model_id, "dagster:drift", False, NOTIFIER, RolloutPlan())
        assert outcome.action == "kept" and failed in outcome.reason
    assert production_ids(con) == ["m-aaaaaaaaaaaa"] and active_rollout(con) is None


def test_a_candidate_needing_approval_waits_and_alerts_then_a_human_approves(
        con: duckdb.DuckDBPyConnection) -> None:
    serving_first(con)
    outcome = promote_candidate(con, "m-bbbbbbbbbbbb", "dagster:drift", True, NOTIFIER, RolloutPlan())
    assert (outcome.action, outcome.serving_model_id) == ("pending_approval", "m-aaaaaaaaaaaa")
    assert get_model(con, "m-bbbbbbbbbbbb").status == "pending_approval"  # type: ignore[union-attr]
    assert [a.kind for a in list_alerts(con)] == ["approval_needed"]
    with pytest.raises(ValueError, match="approver's name and a reason"):
        approve(con, "m-bbbbbbbbbbbb", "alice", " ", RolloutPlan())
    deployment = approve(con, "m-bbbbbbbbbbbb", "alice", "reviewed the gates", RolloutPlan())
    assert (deployment.actor, deployment.reason) == ("human:alice", "approved: reviewed the gates")
    assert production_ids(con) == ["m-bbbbbbbbbbbb"] and active_rollout(con) is not None
    with pytest.raises(ValueError, match="already in production"):
        approve(con, "m-bbbbbbbbbbbb", "alice", "twice", RolloutPlan())


def test_approving_a_failed_candidate_needs_a_recorded_override(con: duckdb.DuckDBPyConnection) -> None:
    serving_first(con)
    reject(con, "m-cccccccccccc", "fairness: gap widened", actor="gates")
    with pytest.raises(ValueError, match="--override-failed-gates"):
        approve(con, "m-cccccccccccc", "alice", "looks fine", RolloutPlan())
    deployment = approve(con, "m-cccccccccccc", "alice", "known false alarm", RolloutPlan(),
                         override_failed_gates=True)
    assert deployment.reason == "OVERRIDE of failed gates ['fairness']; approved: known false alarm"
    assert production_ids(con) == ["m-cccccccccccc"]


def test_a_human_rejects_a_candidate_once(con: duckdb.DuckDBPyConnection) -> None:
    serving_first(con)
    deployment = reject_candidate(con, "m-bbbbbbbbbbbb", "bob", "not this week")
    assert (deployment.action, deployment.actor, deployment.reason) == (
        "reject", "human:bob", "rejected by bob: not this week")
    with pytest.raises(ValueError, match="already rejected"):
        reject_candidate(con, "m-bbbbbbbbbbbb", "bob", "again")
    with pytest.raises(ValueError, match="unknown model id"):
        reject_candidate(con, "m-nope", "bob", "no")


def test_roll_back_alerts(con: duckdb.DuckDBPyConnection) -> None:
    serving_first(con)
    promote(con, "m-bbbbbbbbbbbb", actor="auto", reason="better")
    roll_back(con, "human:carol", "complaints doubled", NOTIFIER)
    [alert] = list_alerts(con)
    assert (alert.kind, alert.subject, alert.details["rolled_back_model_id"]) == (
        "rollback", "m-aaaaaaaaaaaa", "m-bbbbbbbbbbbb")


@pytest.mark.parametrize(("request_", "serving", "move"), [
    (PointerRequest(rollback=True, judged_model_id="m-b"), "m-b", "roll_back"),
    (PointerRequest(rollback=True, judged_model_id="m-a"), "m-b", "ignore_stale_verdict"),  # a newer model serves
    (PointerRequest(rollback=True, judged_model_id="m-a"), None, "ignore_stale_verdict"),
    (PointerRequest(rollback=True), "m-b", "roll_back"),  # a verdict naming no model: whichever serves
    (PointerRequest(rollback=True, candidate_id="m-c"), "m-b", "roll_back"),  # a rollback run promotes nothing
    (PointerRequest(candidate_id="m-c", judged_model_id="m-a"), "m-b", "promote_candidate"),
    (PointerRequest(), "m-b", "promote_newest_ready"),
    (PointerRequest(), None, "promote_newest_ready"),
])
def test_choose_pointer_move(request_: PointerRequest, serving: str | None, move: str) -> None:
    assert choose_pointer_move(request_, serving) == move


def test_a_stale_rollback_verdict_leaves_the_newer_model_serving(con: duckdb.DuckDBPyConnection) -> None:
    serving_first(con)
    promote(con, "m-bbbbbbbbbbbb", actor="auto", reason="better")
    stale = PointerRequest(rollback=True, judged_model_id="m-aaaaaaaaaaaa", rollback_reason="live AUC fell")
    outcome = move_production_pointer(con, stale, "dagster:rollback", NOTIFIER, RolloutPlan())
    assert (outcome.action, outcome.reason) == (
        "kept", "stale rollback verdict for m-aaaaaaaaaaaa: m-bbbbbbbbbbbb serves now")
    assert production_ids(con) == ["m-bbbbbbbbbbbb"] and list_alerts(con) == []
    current = PointerRequest(rollback=True, judged_model_id="m-bbbbbbbbbbbb", rollback_reason="live AUC fell")
    outcome = move_production_pointer(con, current, "dagster:rollback", NOTIFIER, RolloutPlan())
    assert (outcome.action, outcome.serving_model_id, outcome.model_id, outcome.reason) == (
        "rolled_back", "m-aaaaaaaaaaaa", "m-bbbbbbbbbbbb", "live AUC fell")


def test_without_a_candidate_the_newest_ready_one_is_promoted_by_the_same_rules(
        con: duckdb.DuckDBPyConnection) -> None:
    serving_first(con)
    register_candidate(con, candidate("m-dddddddddddd", minute=5, gate_results=FAILED))  # newest, but failed
    waiting = move_production_pointer(con, PointerRequest(requires_approval=True), "dagster:manual", NOTIFIER,
                                      RolloutPlan())
    assert (waiting.action, waiting.model_id) == ("pending_approval", "m-bbbbbbbbbbbb")
    register_candidate(con, candidate("m-eeeeeeeeeeee", minute=6, gate_results=PASSED))
    outcome = move_production_pointer(con, PointerRequest(), "dagster:manual", NOTIFIER, RolloutPlan())
    assert (outcome.action, outcome.model_id) == ("promoted", "m-eeeeeeeeeeee")
    assert active_rollout(con).previous_model_id == "m-aaaaaaaaaaaa"  # type: ignore[union-attr]
    nothing = move_production_pointer(con, PointerRequest(), "dagster:manual", NOTIFIER, RolloutPlan())
    assert (nothing.action, nothing.reason) == ("kept", "no newer gated candidate")
