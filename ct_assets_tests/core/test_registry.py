# Postponed annotations: an evaluated `duckdb.DuckDBPyConnection` annotation kept alive until interpreter
# exit makes nanobind print spurious "leaked" reports once torch is loaded in the same process.
from __future__ import annotations

from datetime import date, datetime

import duckdb
import pytest

from ct_assets.core.release.gates import GateResult
from ct_assets.core.release.registry import (
    ModelRecord,
    ensure_registry_tables,
    get_model,
    get_production,
    list_deployments,
    list_models,
    mark_pending_approval,
    promote,
    record_gate_results,
    register_candidate,
    reject,
    restore,
    rollback,
)


@pytest.fixture()
def con(con: duckdb.DuckDBPyConnection) -> duckdb.DuckDBPyConnection:
    ensure_registry_tables(con)
    ensure_registry_tables(con)  # idempotent
    return con


def candidate(model_id: str, minute: int = 0, **overrides: object) -> ModelRecord:
    values: dict[str, object] = dict(
        model_id=model_id, training_path="retrain", created_at=datetime(2026, 1, 2, 3, minute),
        trigger="drift", trigger_reason="sensor_signal KS p < 0.01", decision_id="d-1", drift_report_id="r-7",
        data_window_start=date(2026, 1, 1), data_window_end=date(2026, 1, 14), n_train_rows=1234,
        hyperparameters={"epochs": 8, "hidden_sizes": [32, 16]}, metrics={"holdout_auc": 0.8},
        wall_s=1.5, cpu_s=2.9, energy_kwh=3.2e-6, co2_kg=1.5e-6, artifact_path=f"data/models/{model_id}",
        weights_sha256="ab" * 32, code_version="0123abcd", policy_version="p-1",
    )
    values.update(overrides)
    return ModelRecord(**values)  # type: ignore[arg-type]


def production_ids(con: duckdb.DuckDBPyConnection) -> list[str]:
    return [row[0] for row in con.execute("SELECT model_id FROM model_registry WHERE status = 'production'").fetchall()]


def test_register_round_trips_every_field_and_is_idempotent(con: duckdb.DuckDBPyConnection) -> None:
    record = candidate("m-aaaaaaaaaaaa")
    assert register_candidate(con, record) == record
    assert register_candidate(con, candidate("m-aaaaaaaaaaaa", trigger="manual")) == record
    assert get_model(con, "m-aaaaaaaaaaaa") == record
    assert con.execute("SELECT count(*) FROM model_registry").fetchall() == [(1,)]
    assert get_model(con, "m-unknown") is None
    assert get_production(con) is None


def test_candidates_cannot_be_registered_straight_into_production(con: duckdb.DuckDBPyConnection) -> None:
    with pytest.raises(ValueError, match="promote"):
        register_candidate(con, candidate("m-aaaaaaaaaaaa", status="production"))
    with pytest.raises(ValueError, match="training_path"):
        register_candidate(con, candidate("m-aaaaaaaaaaaa", training_path="streaming"))


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
    with pytest.raises(ValueError, match="unknown model 'm-nope'"):
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
        rollback(con, actor="oncall", reason="nothing serves")
    promote(con, "m-aaaaaaaaaaaa", actor="bootstrap", reason="first")
    with pytest.raises(ValueError, match="no previous production model"):
        rollback(con, actor="oncall", reason="degraded")
    promote(con, "m-bbbbbbbbbbbb", actor="auto", reason="better")
    promote(con, "m-cccccccccccc", actor="auto", reason="better still")

    back = rollback(con, actor="sensor:rollback", reason="live AUC fell 0.80 -> 0.70")
    assert (back.action, back.model_id, back.previous_model_id) == ("rollback", "m-bbbbbbbbbbbb", "m-cccccccccccc")
    assert production_ids(con) == ["m-bbbbbbbbbbbb"]
    rolled_back = get_model(con, "m-cccccccccccc")
    assert rolled_back.status == "rejected" and "live AUC fell" in rolled_back.status_reason  # type: ignore[union-attr]
    with pytest.raises(ValueError, match="rejected"):
        promote(con, "m-cccccccccccc", actor="auto", reason="retry")

    rollback(con, actor="oncall", reason="b is bad too")
    assert production_ids(con) == ["m-aaaaaaaaaaaa"]
    with pytest.raises(ValueError, match="no previous production model"):
        rollback(con, actor="oncall", reason="once more")
    assert [d.action for d in list_deployments(con)] == ["promote", "promote", "promote", "rollback", "rollback"]


def test_rollback_refuses_to_restore_a_rejected_model(con: duckdb.DuckDBPyConnection) -> None:
    register_candidate(con, candidate("m-aaaaaaaaaaaa", minute=1))
    register_candidate(con, candidate("m-bbbbbbbbbbbb", minute=2))
    promote(con, "m-aaaaaaaaaaaa", actor="bootstrap", reason="first")
    promote(con, "m-bbbbbbbbbbbb", actor="auto", reason="better")
    reject(con, "m-aaaaaaaaaaaa", reason="found a leak in its training data")
    with pytest.raises(ValueError, match="cannot roll back to m-aaaaaaaaaaaa: it was rejected"):
        rollback(con, actor="oncall", reason="degraded")
    assert production_ids(con) == ["m-bbbbbbbbbbbb"]


def test_reject_semantics(con: duckdb.DuckDBPyConnection) -> None:
    register_candidate(con, candidate("m-aaaaaaaaaaaa", minute=1))
    register_candidate(con, candidate("m-bbbbbbbbbbbb", minute=2))
    promote(con, "m-aaaaaaaaaaaa", actor="bootstrap", reason="first")
    with pytest.raises(ValueError, match="in production; use rollback"):
        reject(con, "m-aaaaaaaaaaaa", reason="no")
    with pytest.raises(ValueError, match="unknown model"):
        reject(con, "m-nope", reason="no")
    logged = reject(con, "m-bbbbbbbbbbbb", reason="fairness gate failed", actor="gate:fairness")
    assert logged is not None and (logged.action, logged.actor) == ("reject", "gate:fairness")
    assert reject(con, "m-bbbbbbbbbbbb", reason="again") is None
    assert get_model(con, "m-bbbbbbbbbbbb").status_reason == "fairness gate failed"  # type: ignore[union-attr]
    assert production_ids(con) == ["m-aaaaaaaaaaaa"]


def test_pending_approval_then_human_promotion(con: duckdb.DuckDBPyConnection) -> None:
    register_candidate(con, candidate("m-aaaaaaaaaaaa"))
    mark_pending_approval(con, "m-aaaaaaaaaaaa", reason="high risk tier requires sign-off")
    assert get_model(con, "m-aaaaaaaaaaaa").status == "pending_approval"  # type: ignore[union-attr]
    assert get_production(con) is None
    promote(con, "m-aaaaaaaaaaaa", actor="human:alice", reason="reviewed gates")
    assert production_ids(con) == ["m-aaaaaaaaaaaa"]
    with pytest.raises(ValueError, match="only a staging candidate"):
        mark_pending_approval(con, "m-aaaaaaaaaaaa", reason="too late")


def test_gate_results_are_stored_as_json(con: duckdb.DuckDBPyConnection) -> None:
    register_candidate(con, candidate("m-aaaaaaaaaaaa"))
    results = [
        GateResult("holdout", True, "error", {"improvement": 0.02, "ci_low": float("nan")}, {"margin": 0.01}, "ok"),
        GateResult("calibration", False, "warning", {"ece_increase": 0.05}, {"max_ece_increase": 0.02}, "worse"),
    ]
    record_gate_results(con, "m-aaaaaaaaaaaa", results)
    stored = get_model(con, "m-aaaaaaaaaaaa").gate_results  # type: ignore[union-attr]
    assert [(g["name"], g["passed"], g["severity"]) for g in stored] == [
        ("holdout", True, "error"), ("calibration", False, "warning")]
    assert stored[0]["metrics"] == {"improvement": 0.02, "ci_low": None}
    assert con.execute("SELECT gate_results->>'$[1].reason' FROM model_registry").fetchall() == [("worse",)]
    with pytest.raises(ValueError, match="unknown model"):
        record_gate_results(con, "m-nope", results)


def test_exactly_one_production_model_through_a_sequence_of_operations(con: duckdb.DuckDBPyConnection) -> None:
    ids = [f"m-{c * 12}" for c in "abcdef"]
    for minute, model_id in enumerate(ids):
        register_candidate(con, candidate(model_id, minute=minute))
    promote(con, ids[0], actor="bootstrap", reason="first")
    for step, model_id in enumerate(ids[1:], start=1):
        promote(con, model_id, actor="auto", reason=f"step {step}")
        assert len(production_ids(con)) == 1
        if step % 2 == 0:
            rollback(con, actor="auto", reason=f"degraded at step {step}")
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
