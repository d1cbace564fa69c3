# Postponed annotations: an evaluated `duckdb.DuckDBPyConnection` annotation kept alive until interpreter
# exit makes nanobind print spurious "leaked" reports once torch is loaded in the same process.
from __future__ import annotations

from datetime import date, datetime

import duckdb
import pytest

from ct_assets.core.release.deployment import promote
from ct_assets.core.release.gates import GateResult
from ct_assets.core.release.registry import (
    ModelRecord,
    ensure_registry_tables,
    get_model,
    get_production,
    mark_pending_approval,
    record_gate_results,
    register_candidate,
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
        wall_s=1.5, cpu_s=2.9, energy_kwh=3.2e-6, train_gflops=0.25, co2_kg=1.5e-6, artifact_path=f"data/models/{model_id}",
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


def test_a_registry_from_before_the_deterministic_unit_gains_its_column(tmp_path) -> None:
    with duckdb.connect(str(tmp_path / "old.duckdb")) as old:
        ensure_registry_tables(old)
        old.execute("ALTER TABLE model_registry DROP COLUMN train_gflops")
        old.execute("INSERT INTO model_registry (model_id, created_at, status, training_path, cpu_s) "
                    "VALUES ('m-old', TIMESTAMP '2026-01-01 00:00:00', 'retired', 'retrain', 2.0)")
        ensure_registry_tables(old)
        assert get_model(old, "m-old").train_gflops is None  # type: ignore[union-attr]
        assert register_candidate(old, candidate("m-aaaaaaaaaaaa")).train_gflops == 0.25


def test_candidates_cannot_be_registered_straight_into_production(con: duckdb.DuckDBPyConnection) -> None:
    with pytest.raises(ValueError, match="promote"):
        register_candidate(con, candidate("m-aaaaaaaaaaaa", status="production"))
    with pytest.raises(ValueError, match="training_path"):
        register_candidate(con, candidate("m-aaaaaaaaaaaa", training_path="streaming"))


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
