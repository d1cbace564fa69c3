"""The model registry in DuckDB: one row per model (``model_registry``) and an append-only
``deployments`` log of every promote, rollback and reject.

This module writes the model rows (candidates, gate results, waiting for approval) and reads both
tables. "Production" is a pointer, the single row with ``status = 'production'``; every move of it,
and every ``deployments`` row, is written by :mod:`ct_assets.core.release.deployment`.
Timestamps are naive UTC.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, fields
from datetime import date, datetime
from typing import Any, Literal, Sequence

import duckdb

from ct_assets.core.common import has_table, utc_now
from ct_assets.core.release.gates import GateResult

Status = Literal["staging", "production", "retired", "rejected", "pending_approval"]
STATUSES: tuple[str, ...] = ("staging", "production", "retired", "rejected", "pending_approval")
# "online": an in-place update of the production model from one newly labelled batch.
TRAINING_PATHS: tuple[str, ...] = ("retrain", "fine_tune", "online")
DEPLOYMENT_ACTIONS: tuple[str, ...] = ("promote", "rollback", "reject")

_REGISTRY_DDL = f"""
CREATE TABLE IF NOT EXISTS model_registry (
    model_id VARCHAR PRIMARY KEY,
    created_at TIMESTAMP NOT NULL,
    status VARCHAR NOT NULL CHECK (status IN ({", ".join(repr(s) for s in STATUSES)})),
    training_path VARCHAR NOT NULL CHECK (training_path IN ({", ".join(repr(p) for p in TRAINING_PATHS)})),
    parent_model_id VARCHAR,
    trigger VARCHAR,
    trigger_reason VARCHAR,
    decision_id VARCHAR,
    drift_report_id VARCHAR,
    data_window_start DATE,
    data_window_end DATE,
    n_train_rows BIGINT,
    hyperparameters JSON,
    metrics JSON,
    gate_results JSON,
    wall_s DOUBLE,
    cpu_s DOUBLE,
    energy_kwh DOUBLE,
    train_gflops DOUBLE,
    co2_kg DOUBLE,
    artifact_path VARCHAR,
    weights_sha256 VARCHAR,
    code_version VARCHAR,
    policy_version VARCHAR,
    status_reason VARCHAR
)
"""
_DEPLOYMENTS_DDL = f"""
CREATE TABLE IF NOT EXISTS deployments (
    deployment_id BIGINT PRIMARY KEY,
    model_id VARCHAR NOT NULL,
    previous_model_id VARCHAR,
    action VARCHAR NOT NULL CHECK (action IN ({", ".join(repr(a) for a in DEPLOYMENT_ACTIONS)})),
    actor VARCHAR NOT NULL,
    reason VARCHAR NOT NULL,
    acted_at TIMESTAMP NOT NULL
)
"""
_JSON_COLUMNS = ("hyperparameters", "metrics", "gate_results")
# Copied into the analyst snapshot (core/ops/snapshots.py).
ANALYST_TABLES: tuple[str, ...] = ("model_registry", "deployments")


@dataclass(frozen=True)
class ModelRecord:
    """One ``model_registry`` row. JSON columns are plain Python dicts/lists here."""

    model_id: str
    training_path: str
    created_at: datetime = field(default_factory=utc_now)
    status: str = "staging"
    parent_model_id: str | None = None
    trigger: str | None = None
    trigger_reason: str | None = None
    decision_id: str | None = None
    drift_report_id: str | None = None
    data_window_start: date | None = None
    data_window_end: date | None = None
    n_train_rows: int | None = None
    hyperparameters: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    gate_results: list[dict[str, Any]] = field(default_factory=list)
    wall_s: float | None = None
    cpu_s: float | None = None
    energy_kwh: float | None = None
    train_gflops: float | None = None  # deterministic training cost (core/training/cost.py); None: not counted
    co2_kg: float | None = None
    artifact_path: str | None = None
    weights_sha256: str | None = None
    code_version: str | None = None
    policy_version: str | None = None
    status_reason: str | None = None  # why the status last changed (rejection, rollback, ...)


@dataclass(frozen=True)
class Deployment:
    """One ``deployments`` row."""

    deployment_id: int
    model_id: str
    previous_model_id: str | None
    action: str
    actor: str
    reason: str
    acted_at: datetime


_RECORD_COLUMNS: tuple[str, ...] = tuple(f.name for f in fields(ModelRecord))


def ensure_registry_tables(con: duckdb.DuckDBPyConnection) -> None:
    """Create ``model_registry`` and ``deployments`` if they do not exist (idempotent); a registry created
    before the deterministic cost unit gets its ``train_gflops`` column (NULL for the older rows)."""
    con.execute(_REGISTRY_DDL)
    con.execute("ALTER TABLE model_registry ADD COLUMN IF NOT EXISTS train_gflops DOUBLE")
    con.execute(_DEPLOYMENTS_DDL)


def _row_to_record(row: tuple[Any, ...]) -> ModelRecord:
    values = dict(zip(_RECORD_COLUMNS, row))
    for column in _JSON_COLUMNS:
        values[column] = json.loads(values[column]) if values[column] is not None else None
    values["hyperparameters"] = values["hyperparameters"] or {}
    values["metrics"] = values["metrics"] or {}
    values["gate_results"] = values["gate_results"] or []
    return ModelRecord(**values)


def _select_sql(where: str = "") -> str:
    return f"SELECT {', '.join(_RECORD_COLUMNS)} FROM model_registry {where}"


def _to_json(value: Any, what: str) -> str:
    try:
        return json.dumps(value, sort_keys=True, allow_nan=False)
    except (TypeError, ValueError) as error:
        raise ValueError(f"{what} is not plain JSON (no NaN/inf, no objects): {error}") from None


def _require_text(value: str, what: str) -> None:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{what} must be a non-empty string")


def register_candidate(con: duckdb.DuckDBPyConnection, record: ModelRecord) -> ModelRecord:
    """Insert a new candidate (status ``staging`` or ``pending_approval``); return the stored row.

    Idempotent: registering a model_id that already exists changes nothing and returns the existing row
    (ids are content hashes, so the same id is the same model).
    """
    _require_text(record.model_id, "model_id")
    if record.status not in ("staging", "pending_approval"):
        raise ValueError(f"model {record.model_id}: a candidate is registered as 'staging' or 'pending_approval', "
                         f"not {record.status!r}; use deployment.promote() to reach production")
    if record.training_path not in TRAINING_PATHS:
        raise ValueError(f"model {record.model_id}: training_path must be one of {TRAINING_PATHS}, "
                         f"got {record.training_path!r}")
    values = [getattr(record, c) for c in _RECORD_COLUMNS]
    for i, column in enumerate(_RECORD_COLUMNS):
        if column in _JSON_COLUMNS:
            values[i] = _to_json(values[i], f"model {record.model_id}: {column}")
    placeholders = ", ".join("?" for _ in _RECORD_COLUMNS)
    con.execute(
        f"INSERT INTO model_registry ({', '.join(_RECORD_COLUMNS)}) VALUES ({placeholders}) "
        "ON CONFLICT (model_id) DO NOTHING",
        values,
    )
    return require_model(con, record.model_id)


def get_model(con: duckdb.DuckDBPyConnection, model_id: str) -> ModelRecord | None:
    """The registry row of ``model_id``, or None if unknown (also before the registry exists)."""
    if not has_table(con, "model_registry"):
        return None
    rows = con.execute(_select_sql("WHERE model_id = ?"), [model_id]).fetchall()
    return _row_to_record(rows[0]) if rows else None


def get_production(con: duckdb.DuckDBPyConnection) -> ModelRecord | None:
    """The model currently serving, or None before the first promotion."""
    if not has_table(con, "model_registry"):
        return None
    rows = con.execute(_select_sql("WHERE status = 'production'")).fetchall()
    if len(rows) > 1:
        raise ValueError(f"registry is inconsistent: {len(rows)} production models")
    return _row_to_record(rows[0]) if rows else None


def list_models(con: duckdb.DuckDBPyConnection, status: str | None = None) -> list[ModelRecord]:
    """All models, newest first, optionally only those with ``status``."""
    if status is not None and status not in STATUSES:
        raise ValueError(f"status must be one of {STATUSES}, got {status!r}")
    if status is None:
        rows = con.execute(_select_sql("ORDER BY created_at DESC, model_id")).fetchall()
    else:
        rows = con.execute(_select_sql("WHERE status = ? ORDER BY created_at DESC, model_id"), [status]).fetchall()
    return [_row_to_record(row) for row in rows]


def list_deployments(con: duckdb.DuckDBPyConnection) -> list[Deployment]:
    """The deployments log, oldest first."""
    rows = con.execute(
        "SELECT deployment_id, model_id, previous_model_id, action, actor, reason, acted_at "
        "FROM deployments ORDER BY deployment_id"
    ).fetchall()
    return [Deployment(*row) for row in rows]


def require_model(con: duckdb.DuckDBPyConnection, model_id: str) -> ModelRecord:
    """The registry row of ``model_id``; raises ValueError when it is unknown."""
    record = get_model(con, model_id)
    if record is None:
        raise ValueError(f"unknown model id {model_id!r}: it is not in the registry")
    return record


def record_gate_results(con: duckdb.DuckDBPyConnection, model_id: str, results: Sequence[GateResult]) -> None:
    """Store the gate outcomes of ``model_id`` (replacing earlier ones)."""
    require_model(con, model_id)
    payload = _to_json([r.to_dict() for r in results], f"model {model_id}: gate_results")
    con.execute("UPDATE model_registry SET gate_results = ? WHERE model_id = ?", [payload, model_id])


def mark_pending_approval(con: duckdb.DuckDBPyConnection, model_id: str, reason: str) -> None:
    """Park a staging candidate until a human approves (promote) or rejects it."""
    _require_text(reason, "reason")
    record = require_model(con, model_id)
    if record.status not in ("staging", "pending_approval"):
        raise ValueError(f"model {model_id} is {record.status}; only a staging candidate can await approval")
    con.execute("UPDATE model_registry SET status = 'pending_approval', status_reason = ? WHERE model_id = ?",
                [reason, model_id])


def chain_root(con: duckdb.DuckDBPyConnection, record: ModelRecord) -> ModelRecord:
    """The last full retrain behind ``record``: walks parent links through fine-tunes and online updates.

    Stops at a model without a (registered) parent, and at a loop in the links, so it always ends.
    """
    current, seen = record, {record.model_id}
    while current.training_path in ("fine_tune", "online") and current.parent_model_id:
        parent = get_model(con, current.parent_model_id)
        if parent is None or parent.model_id in seen:
            break
        seen.add(parent.model_id)
        current = parent
    return current
