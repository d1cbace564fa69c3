"""Rollout state in DuckDB: ``rollouts`` (one row per rollout, its current step) and ``rollout_steps``
(an append-only log of every verdict, which also answers "what share did model X serve on day D")."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import duckdb

from ct_assets.core.common import has_table, utc_now

STEP_VERDICTS: tuple[str, ...] = ("start", "hold", "advance", "complete", "rollback", "superseded")
ROLLOUT_STATUSES: tuple[str, ...] = ("active", "completed", "rolled_back", "superseded")
# Copied into the analyst snapshot (core/ops/snapshots.py).
ANALYST_TABLES: tuple[str, ...] = ("rollouts", "rollout_steps")

_DDL = (
    f"""
    CREATE TABLE IF NOT EXISTS rollouts (
        rollout_id VARCHAR PRIMARY KEY,
        model_id VARCHAR NOT NULL,
        previous_model_id VARCHAR NOT NULL,
        steps JSON NOT NULL,
        days_per_step INTEGER NOT NULL,
        start_day DATE NOT NULL,
        status VARCHAR NOT NULL CHECK (status IN ({", ".join(repr(s) for s in ROLLOUT_STATUSES)})),
        step_index INTEGER NOT NULL,
        traffic_share DOUBLE NOT NULL,
        step_started_day DATE NOT NULL,
        reason VARCHAR NOT NULL,
        created_at TIMESTAMP NOT NULL
    )
    """,
    f"""
    CREATE TABLE IF NOT EXISTS rollout_steps (
        seq BIGINT PRIMARY KEY,
        rollout_id VARCHAR NOT NULL,
        day DATE NOT NULL,
        verdict VARCHAR NOT NULL CHECK (verdict IN ({", ".join(repr(v) for v in STEP_VERDICTS)})),
        step_index INTEGER NOT NULL,
        traffic_share DOUBLE NOT NULL,
        reason VARCHAR NOT NULL,
        live JSON,
        recorded_at TIMESTAMP NOT NULL
    )
    """,
)
ROLLOUT_COLUMNS: tuple[str, ...] = ("rollout_id", "model_id", "previous_model_id", "steps", "days_per_step",
                                     "start_day", "status", "step_index", "traffic_share", "step_started_day",
                                     "reason", "created_at")


@dataclass(frozen=True)
class RolloutRecord:
    """One ``rollouts`` row: the rollout's plan and current step."""

    rollout_id: str
    model_id: str
    previous_model_id: str
    steps: tuple[float, ...]
    days_per_step: int
    start_day: date
    status: str
    step_index: int
    traffic_share: float
    step_started_day: date
    reason: str
    created_at: datetime


@dataclass(frozen=True)
class RolloutStep:
    """One verdict of a rollout on one day, and the traffic share of the new model from that day on."""

    rollout_id: str
    model_id: str
    previous_model_id: str
    day: date
    verdict: str  # one of STEP_VERDICTS
    step_index: int
    traffic_share: float
    reason: str
    live: dict[str, Any] | None


def ensure_rollout_tables(con: duckdb.DuckDBPyConnection) -> None:
    """Create ``rollouts`` and ``rollout_steps`` if they do not exist (idempotent)."""
    for statement in _DDL:
        con.execute(statement)


def get_rollout(con: duckdb.DuckDBPyConnection, rollout_id: str) -> RolloutRecord | None:
    """The rollout with ``rollout_id``, or None."""
    rows = select_rollouts(con, "WHERE rollout_id = ?", [rollout_id])
    return rows[0] if rows else None


def active_rollout(con: duckdb.DuckDBPyConnection) -> RolloutRecord | None:
    """The rollout currently ramping, or None (at most one is active)."""
    rows = select_rollouts(con, "WHERE status = 'active'", [])
    if len(rows) > 1:
        raise ValueError(f"rollouts are inconsistent: {len(rows)} active rollouts")
    return rows[0] if rows else None


def list_rollout_steps(con: duckdb.DuckDBPyConnection, rollout_id: str) -> list[RolloutStep]:
    """Every recorded verdict of a rollout, oldest first."""
    return select_steps(con, "s.rollout_id = ?", [rollout_id])


def insert_rollout(con: duckdb.DuckDBPyConnection, record: RolloutRecord) -> None:
    """Write a new ``rollouts`` row (inside the caller's transaction)."""
    values = {**{column: getattr(record, column) for column in ROLLOUT_COLUMNS},
              "steps": json.dumps(list(record.steps))}
    con.execute(f"INSERT INTO rollouts ({', '.join(ROLLOUT_COLUMNS)}) "
                f"VALUES ({', '.join('?' for _ in ROLLOUT_COLUMNS)})", list(values.values()))


def select_rollouts(con: duckdb.DuckDBPyConnection, where: str, params: list[Any]) -> list[RolloutRecord]:
    """Rollouts matching the SQL ``where`` clause (may be empty), oldest first."""
    if not has_table(con, "rollouts"):
        return []
    rows = con.execute(f"SELECT {', '.join(ROLLOUT_COLUMNS)} FROM rollouts {where} ORDER BY created_at",
                       params).fetchall()
    records = []
    for row in rows:
        values = dict(zip(ROLLOUT_COLUMNS, row))
        values["steps"] = tuple(json.loads(values["steps"]))
        records.append(RolloutRecord(**values))
    return records


def select_steps(con: duckdb.DuckDBPyConnection, condition: str, params: list[Any]) -> list[RolloutStep]:
    """Steps matching ``condition`` (over alias ``s`` = rollout_steps), oldest first."""
    if not has_table(con, "rollout_steps"):
        return []
    rows = con.execute(
        "SELECT s.rollout_id, r.model_id, r.previous_model_id, s.day, s.verdict, s.step_index, s.traffic_share, "
        f"s.reason, s.live FROM rollout_steps s JOIN rollouts r ON r.rollout_id = s.rollout_id WHERE {condition} "
        "ORDER BY s.seq", params).fetchall()
    return [RolloutStep(*row[:8], live=None if row[8] is None else json.loads(row[8])) for row in rows]


def update_rollout(con: duckdb.DuckDBPyConnection, rollout_id: str, status: str, step_index: int,
                   traffic_share: float, step_started_day: date, reason: str) -> None:
    """Move a rollout to its new status and step (inside the caller's transaction)."""
    con.execute("UPDATE rollouts SET status = ?, step_index = ?, traffic_share = ?, step_started_day = ?, reason = ? "
                "WHERE rollout_id = ?", [status, step_index, traffic_share, step_started_day, reason, rollout_id])


def append_step(con: duckdb.DuckDBPyConnection, rollout_id: str, day: date, verdict: str, step_index: int,
                traffic_share: float, reason: str, live: dict[str, Any] | None) -> None:
    """Log one verdict (inside the caller's transaction)."""
    # Writers to the live database are serialized, so max + 1 inside the transaction is unique.
    seq = con.execute("SELECT coalesce(max(seq), 0) + 1 FROM rollout_steps").fetchall()[0][0]
    con.execute(
        "INSERT INTO rollout_steps (seq, rollout_id, day, verdict, step_index, traffic_share, reason, live, "
        "recorded_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [seq, rollout_id, day, verdict, step_index, traffic_share, reason,
         None if live is None else json.dumps(live, sort_keys=True), utc_now()],
    )
