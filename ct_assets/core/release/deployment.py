"""Promotion, human approval, overrides and rollback: every move of the production pointer.

Each function is one transaction-backed registry change plus its alert and rollout record, so
the Dagster assets, the `ct` command and the UI approval asset all move the pointer the same way.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import duckdb

from ct_assets.core.data import schema
from ct_assets.core.ops.alerts import Notifier, raise_alert
from ct_assets.core.release.registry import (
    Deployment,
    ModelRecord,
    get_model,
    get_production,
    mark_pending_approval,
    promote,
    reject,
    rollback,
)
from ct_assets.core.release.rollout import RolloutPlan, advance_rollout, start_rollout
from ct_assets.core.release.rollout_comparison import compare_live
from ct_assets.core.release.rollout_store import RolloutStep, active_rollout
from ct_assets.core.training.artifacts import load_model
from ct_assets.core.training.model import predict_proba
from ct_assets.core.training.preprocessing import MODEL_INPUTS


@dataclass(frozen=True)
class PromotionOutcome:
    action: str  # "promoted" | "pending_approval" | "kept"
    serving_model_id: str | None
    candidate_id: str
    reason: str


def _require(con: duckdb.DuckDBPyConnection, model_id: str) -> ModelRecord:
    record = get_model(con, model_id)
    if record is None:
        raise ValueError(f"unknown model id {model_id!r}")
    return record


def failed_gates(record: ModelRecord) -> list[str]:
    """Names of the error-severity gates the model failed; ['not evaluated'] when it has none."""
    if not record.gate_results:
        return ["not evaluated"]
    return [g["name"] for g in record.gate_results if g.get("severity") == "error" and not g.get("passed")]


def promote_candidate(con: duckdb.DuckDBPyConnection, candidate_id: str, actor: str, requires_approval: bool,
                      notifier: Notifier, plan: RolloutPlan) -> PromotionOutcome:
    """Promote a gated candidate, or park it for a human when approval is required."""
    record = _require(con, candidate_id)
    serving = get_production(con)
    serving_id = serving.model_id if serving else None
    if record.status == "production":
        return PromotionOutcome("kept", serving_id, candidate_id, "already serving")
    failed = failed_gates(record)
    if record.status == "rejected" or failed:
        return PromotionOutcome("kept", serving_id, candidate_id,
                                f"not promoted: failed gates {failed} ({record.status_reason or record.status})")
    if requires_approval:
        mark_pending_approval(con, candidate_id, f"gates passed; waiting for human approval (requested by {actor})")
        raise_alert(con, "approval_needed", "warning", candidate_id,
                    f"candidate {candidate_id} passed its gates and awaits approval: ct approve {candidate_id}",
                    {"actor": actor, "serving_model_id": serving_id}, notifier)
        return PromotionOutcome("pending_approval", serving_id, candidate_id, "awaiting human approval")
    deployment = promote(con, candidate_id, actor=actor, reason=f"gates passed ({record.trigger}: "
                                                                  f"{record.trigger_reason})")
    if deployment is not None and deployment.previous_model_id:
        start_rollout(con, candidate_id, deployment.previous_model_id, plan, day=str(record.data_window_end))
    return PromotionOutcome("promoted", candidate_id, candidate_id, "gates passed")


def approve(con: duckdb.DuckDBPyConnection, model_id: str, approver: str, reason: str, plan: RolloutPlan,
            override_failed_gates: bool = False) -> Deployment:
    """A human promotes a candidate. A candidate that failed a gate needs an explicit override,
    which is recorded with the approver's name and reason."""
    if not approver.strip() or not reason.strip():
        raise ValueError("an approval needs the approver's name and a reason")
    record = _require(con, model_id)
    failed = failed_gates(record)
    if record.status == "production":
        raise ValueError(f"model {model_id} is already in production")
    if (failed or record.status == "rejected") and not override_failed_gates:
        raise ValueError(f"model {model_id} failed gates {failed} ({record.status_reason}); "
                         "approving it needs --override-failed-gates with a reason")
    if record.status == "rejected":
        # An override re-stages the model so the registry's promotion rules still apply.
        con.execute("UPDATE model_registry SET status = 'staging', status_reason = ? WHERE model_id = ?",
                    [f"OVERRIDE of failed gates {failed} by {approver}: {reason}", model_id])
    label = "OVERRIDE of failed gates " + str(failed) + "; " if failed else ""
    deployment = promote(con, model_id, actor=f"human:{approver}", reason=f"{label}approved: {reason}")
    if deployment is None:
        raise ValueError(f"model {model_id} was not promoted")
    if deployment.previous_model_id:
        start_rollout(con, model_id, deployment.previous_model_id, plan, day=str(record.data_window_end))
    return deployment


def reject_candidate(con: duckdb.DuckDBPyConnection, model_id: str, approver: str, reason: str) -> Deployment:
    """A human rejects a candidate waiting for approval (or any staged candidate)."""
    if not approver.strip() or not reason.strip():
        raise ValueError("a rejection needs the approver's name and a reason")
    _require(con, model_id)
    deployment = reject(con, model_id, f"rejected by {approver}: {reason}", actor=f"human:{approver}")
    if deployment is None:
        raise ValueError(f"model {model_id} was already rejected")
    return deployment


def roll_back(con: duckdb.DuckDBPyConnection, actor: str, reason: str, notifier: Notifier) -> Deployment:
    """Put the previous production model back (a pointer swap: seconds, not a retrain) and alert."""
    deployment = rollback(con, actor=actor, reason=reason)
    raise_alert(con, "rollback", "error", deployment.model_id,
                f"rolled back to {deployment.model_id} (was {deployment.previous_model_id}): {reason}",
                {"actor": actor, "rolled_back_model_id": deployment.previous_model_id}, notifier)
    return deployment


def _complaints_ratio(con: duckdb.DuckDBPyConnection, day: str) -> float | None:
    exists = con.execute("SELECT count(*) FROM information_schema.tables WHERE table_name = 'complaint_results'"
                         ).fetchall()[0][0]
    if not exists:
        return None
    rows = con.execute("SELECT rate_ratio FROM complaint_results WHERE partition = ?", [day]).fetchall()
    return float(rows[0][0]) if rows and rows[0][0] is not None else None


def monitor_rollout_day(con: duckdb.DuckDBPyConnection, models_dir: Path, day: str, recent_days: int = 3,
                        tolerance: float = 0.02) -> RolloutStep | None:
    """Judge the active rollout on ``day``: the new and the previous model scored on the same
    recently labelled rows (a shadow comparison) plus the day's complaint-rate ratio.

    Returns the recorded step (advance / hold / complete / rollback), or None without a rollout.
    """
    rollout = active_rollout(con)
    if rollout is None:
        return None
    recent = con.execute(
        "SELECT f.*, l.is_fraud FROM labels l JOIN features f USING (event_id) "
        "WHERE l.arrival_day BETWEEN CAST(? AS DATE) - CAST(? AS INTEGER) + 1 AND CAST(? AS DATE) "
        "ORDER BY f.event_id", [day, recent_days, day]).fetchdf()
    inputs = recent[list(MODEL_INPUTS)]
    live = compare_live(
        recent[schema.FRAUD_LABEL_COLUMN].to_numpy(),
        predict_proba(load_model(models_dir, rollout.model_id), inputs),
        predict_proba(load_model(models_dir, rollout.previous_model_id), inputs),
        _complaints_ratio(con, day), tolerance=tolerance)
    return advance_rollout(con, day, live)
