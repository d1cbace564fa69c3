"""Every retrain-vs-fine-tune decision as a row of the DuckDB ``decisions`` table.

A decision's id is a hash of its day, its evidence and the policy version, so re-evaluating a day on the
same evidence under the same policy gives the same id and rewrites that one row instead of adding a
second; sensors use the id as their run key. Different evidence (labels arrived, a new production model)
is a different decision with its own row; earlier rows are kept, because models name them in lineage.

``outcome`` is NULL until the chosen training path reports back (the candidate model id, or
``"no action"``); re-recording a decision keeps its outcome and first ``decided_at``.

Example
-------
On an empty warehouse the policy wants a first model but has no labels to train it on yet:

>>> import duckdb
>>> from ct_assets.core.decision.evidence import gather_evidence
>>> from ct_assets.core.decision.policy import decide
>>> from ct_assets.core.decision.policy_config import load_policy_config
>>> con, config = duckdb.connect(), load_policy_config()
>>> evidence = gather_evidence(con, "2024-03-14", config)
>>> record = record_decision(con, "2024-03-14", decide(evidence, config), evidence)
>>> record.action, record.wanted_action, record.fired_rules
('none', 'retrain', ('bootstrap', 'labels_scarce'))
>>> set_decision_outcome(con, record.decision_id, "no action").outcome
'no action'
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import duckdb

from ct_assets.core.common import parse_iso_day, utc_now
from ct_assets.core.decision.evidence import evidence_to_dict
from ct_assets.core.decision.policy import Decision, Evidence
from ct_assets.core.ops.faults import DECISION_WRITTEN, pause_point

# Copied into the analyst snapshot (core/ops/snapshots.py).
ANALYST_TABLES: tuple[str, ...] = ("decisions",)
_DDL = """
CREATE TABLE IF NOT EXISTS decisions (
    decision_id VARCHAR PRIMARY KEY,
    day DATE NOT NULL,
    decided_at TIMESTAMP NOT NULL,
    action VARCHAR NOT NULL,
    requires_approval BOOLEAN NOT NULL,
    reasons JSON NOT NULL,
    fired_rules JSON NOT NULL,
    wanted_action VARCHAR NOT NULL,
    evidence JSON NOT NULL,
    evidence_ids JSON NOT NULL,
    estimated_cost DOUBLE NOT NULL,
    cost_unit VARCHAR NOT NULL,
    budget_left DOUBLE NOT NULL,
    policy_version VARCHAR NOT NULL,
    outcome VARCHAR
)
"""
_COLUMNS: tuple[str, ...] = (
    "decision_id", "day", "decided_at", "action", "requires_approval", "reasons", "fired_rules", "wanted_action",
    "evidence", "evidence_ids", "estimated_cost", "cost_unit", "budget_left", "policy_version", "outcome",
)
_JSON_COLUMNS = frozenset({"reasons", "fired_rules", "evidence", "evidence_ids"})
# Columns a re-recorded decision rewrites; decided_at and outcome keep their first values.
_REWRITTEN = tuple(c for c in _COLUMNS if c not in ("decision_id", "decided_at", "outcome"))


@dataclass(frozen=True)
class DecisionRecord:
    """One ``decisions`` row. ``budget_left`` is what remains of the period's budget after ``action`` runs."""

    decision_id: str
    day: date
    decided_at: datetime
    action: str
    requires_approval: bool
    reasons: tuple[str, ...]
    fired_rules: tuple[str, ...]
    wanted_action: str
    evidence: dict[str, Any]
    evidence_ids: dict[str, str]
    estimated_cost: float
    cost_unit: str
    budget_left: float
    policy_version: str
    outcome: str | None


def ensure_decision_tables(con: duckdb.DuckDBPyConnection) -> None:
    """Create the ``decisions`` table if it does not exist (idempotent)."""
    con.execute(_DDL)


def decision_id_for(day: str, evidence: Evidence, policy_version: str) -> str:
    """Deterministic id of the decision on ``evidence`` for ``day`` under ``policy_version``.

    >>> from ct_assets.core.decision.policy import Evidence
    >>> ev = Evidence("none", 0.0, "none", (), (), 0.0, False, 0.0, False, False, 1.0, 0, 0.0, 0, 0.0, 0,
    ...               100.0, "low", True, 2000)
    >>> decision_id_for("2024-03-14", ev, "1+abc") == decision_id_for("2024-03-14", ev, "1+abc")
    True
    >>> decision_id_for("2024-03-14", ev, "1+abc")[:15]
    'dec-2024-03-14-'
    """
    parsed = parse_iso_day(day)
    if not isinstance(policy_version, str) or not policy_version:
        raise ValueError(f"policy_version must be a non-empty string, got {policy_version!r}")
    canonical = json.dumps({"day": parsed.isoformat(), "evidence": evidence_to_dict(evidence),
                            "policy_version": policy_version}, sort_keys=True, separators=(",", ":"))
    return f"dec-{parsed.isoformat()}-{hashlib.sha256(canonical.encode('utf-8')).hexdigest()[:12]}"


def record_decision(con: duckdb.DuckDBPyConnection, day: str, decision: Decision, evidence: Evidence) -> DecisionRecord:
    """Store ``decision`` (made on ``evidence`` for ``day``) and return the stored row.

    Idempotent: recording the same day, evidence and policy version again rewrites the same row.
    """
    if not isinstance(decision, Decision):
        raise ValueError(f"decision must be a Decision, got {type(decision).__name__}")
    decision_id = decision_id_for(day, evidence, decision.policy_version)
    ensure_decision_tables(con)
    values: dict[str, Any] = {
        "decision_id": decision_id, "day": parse_iso_day(day), "decided_at": utc_now(), "action": decision.action,
        "requires_approval": decision.requires_approval, "reasons": list(decision.reasons),
        "fired_rules": list(decision.fired_rules), "wanted_action": decision.wanted_action,
        "evidence": evidence_to_dict(evidence), "evidence_ids": dict(sorted(evidence.evidence_ids.items())),
        "estimated_cost": decision.estimated_cost, "cost_unit": decision.cost_unit,
        "budget_left": decision.budget_left_after, "policy_version": decision.policy_version, "outcome": None,
    }
    params = [json.dumps(values[c], sort_keys=True, allow_nan=False) if c in _JSON_COLUMNS else values[c]
              for c in _COLUMNS]
    updates = ", ".join(f"{c} = excluded.{c}" for c in _REWRITTEN)
    con.execute(
        f"INSERT INTO decisions ({', '.join(_COLUMNS)}) VALUES ({', '.join('?' for _ in _COLUMNS)}) "
        f"ON CONFLICT (decision_id) DO UPDATE SET {updates}",
        params,
    )
    pause_point(DECISION_WRITTEN)
    record = get_decision(con, decision_id)
    assert record is not None  # just written
    return record


def get_decision(con: duckdb.DuckDBPyConnection, decision_id: str) -> DecisionRecord | None:
    """The decision with ``decision_id``, or None if unknown."""
    if not _has_decisions(con):
        return None
    rows = con.execute(f"SELECT {', '.join(_COLUMNS)} FROM decisions WHERE decision_id = ?", [decision_id]).fetchall()
    return _row_to_record(rows[0]) if rows else None


def list_decisions(con: duckdb.DuckDBPyConnection, since_day: str | None = None) -> list[DecisionRecord]:
    """Decisions oldest first (by day, then time), optionally only those on or after ``since_day``."""
    if not _has_decisions(con):
        return []
    select = f"SELECT {', '.join(_COLUMNS)} FROM decisions"
    order = "ORDER BY day, decided_at, decision_id"
    if since_day is None:
        rows = con.execute(f"{select} {order}").fetchall()
    else:
        rows = con.execute(f"{select} WHERE day >= ? {order}", [parse_iso_day(since_day)]).fetchall()
    return [_row_to_record(row) for row in rows]


def set_decision_outcome(con: duckdb.DuckDBPyConnection, decision_id: str, outcome: str) -> DecisionRecord:
    """Record what the chosen path produced (e.g. the candidate model id, or ``"no action"``)."""
    if not isinstance(outcome, str) or not outcome.strip():
        raise ValueError(f"outcome must be a non-empty string, got {outcome!r}")
    if get_decision(con, decision_id) is None:
        raise ValueError(f"unknown decision {decision_id!r}: it is not in the decisions table")
    con.execute("UPDATE decisions SET outcome = ? WHERE decision_id = ?", [outcome, decision_id])
    record = get_decision(con, decision_id)
    assert record is not None  # checked above
    return record


def _row_to_record(row: tuple[Any, ...]) -> DecisionRecord:
    values = dict(zip(_COLUMNS, row))
    for column in _JSON_COLUMNS:
        values[column] = json.loads(values[column])
    values["reasons"] = tuple(values["reasons"])
    values["fired_rules"] = tuple(values["fired_rules"])
    return DecisionRecord(**values)


def _has_decisions(con: duckdb.DuckDBPyConnection) -> bool:
    """Readers check instead of creating the table, so read-only connections work."""
    return bool(con.execute("SELECT count(*) FROM duckdb_tables() WHERE table_name = 'decisions' "
                            "AND schema_name = current_schema()").fetchall()[0][0])
