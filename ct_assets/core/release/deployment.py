"""The production pointer: every move of it, and every row of the ``deployments`` log.

"Production" is the single ``model_registry`` row with ``status = 'production'``. Each move swaps
it inside one transaction together with its ``deployments`` row (old production retired or
rejected, new one production), so a reader never sees zero or two production models and a failure
leaves the pointer where it was. The rollout record and the alert of a move follow its commit: a
page never announces a move that did not happen. The Dagster assets, the `ct` command, the UI
approval asset and online mode all move the pointer through this module; the registry module
keeps the model rows and the reads.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import duckdb

from ct_assets.core.common import utc_now
from ct_assets.core.ops.alerts import Notifier, raise_alert
from ct_assets.core.ops.faults import PROMOTE_INSIDE_SWAP, pause_point
from ct_assets.core.release.lineup import recorded_blocking_failures
from ct_assets.core.release.registry import (
    Deployment,
    ModelRecord,
    get_production,
    list_models,
    mark_pending_approval,
    require_model,
)
from ct_assets.core.release.rollout import RolloutPlan, start_rollout

PointerMove = Literal["roll_back", "ignore_stale_verdict", "promote_candidate", "promote_newest_ready"]


@dataclass(frozen=True)
class PointerRequest:
    """What a `production_model` run asks of the pointer (from its run tags and its candidate)."""

    rollback: bool = False
    judged_model_id: str | None = None  # the model a rollback verdict judged; None: whichever serves
    rollback_reason: str = "rollback requested"
    candidate_id: str | None = None  # the run's own candidate; None: the newest gated staging candidate
    requires_approval: bool = False


@dataclass(frozen=True)
class PointerOutcome:
    action: str  # "promoted" | "pending_approval" | "kept" | "rolled_back"
    serving_model_id: str | None
    model_id: str | None  # the model the move was about (candidate, judged or rolled-back model)
    reason: str


def _require_text(value: str, what: str) -> None:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{what} must be a non-empty string")


def _append_deployment(con: duckdb.DuckDBPyConnection, model_id: str, previous_model_id: str | None,
                       action: str, actor: str, reason: str) -> Deployment:
    # Writers to the live database are serialized, so max + 1 inside the transaction is unique.
    next_id = con.execute("SELECT coalesce(max(deployment_id), 0) + 1 FROM deployments").fetchall()[0][0]
    deployment = Deployment(int(next_id), model_id, previous_model_id, action, actor, reason, utc_now())
    con.execute(
        "INSERT INTO deployments (deployment_id, model_id, previous_model_id, action, actor, reason, acted_at) "
        "VALUES (?, ?, ?, ?, ?, ?, ?)",
        [deployment.deployment_id, model_id, previous_model_id, action, actor, reason, deployment.acted_at],
    )
    return deployment


def _swap_production(con: duckdb.DuckDBPyConnection, model_id: str, action: str, actor: str, reason: str,
                     old_status: str) -> Deployment:
    """In one transaction: old production -> ``old_status``, ``model_id`` -> production, log row."""
    con.execute("BEGIN TRANSACTION")
    try:
        current = get_production(con)
        previous_id = current.model_id if current else None
        if current is not None:
            con.execute("UPDATE model_registry SET status = ?, status_reason = ? WHERE model_id = ?",
                        [old_status, f"{action} to {model_id}: {reason}", previous_id])
        con.execute("UPDATE model_registry SET status = 'production', status_reason = ? WHERE model_id = ?",
                    [f"{action} by {actor}: {reason}", model_id])
        deployment = _append_deployment(con, model_id, previous_id, action, actor, reason)
        pause_point(PROMOTE_INSIDE_SWAP)
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    return deployment


def promote(con: duckdb.DuckDBPyConnection, model_id: str, actor: str, reason: str) -> Deployment | None:
    """Make ``model_id`` the production model; the previous one becomes ``retired``.

    The bare swap, without gates, approval or rollout (an online update, a first model in a test).
    Refuses unknown and rejected models; promoting the model that already serves returns None.
    """
    _require_text(actor, "actor")
    _require_text(reason, "reason")
    record = require_model(con, model_id)
    if record.status == "rejected":
        raise ValueError(f"model {model_id} was rejected ({record.status_reason}); it cannot be promoted")
    if record.status == "production":
        return None
    return _swap_production(con, model_id, "promote", actor, reason, old_status="retired")


def failed_gates(record: ModelRecord) -> list[str]:
    """Names of the error-severity gates the model failed; ['not evaluated'] when it has none."""
    if not record.gate_results:
        return ["not evaluated"]
    return recorded_blocking_failures(record.gate_results)


def _start_rollout_after(con: duckdb.DuckDBPyConnection, deployment: Deployment | None, record: ModelRecord,
                         plan: RolloutPlan) -> None:
    # A first model serves all traffic at once: a rollout needs a previous model to compare with.
    if deployment is not None and deployment.previous_model_id:
        start_rollout(con, record.model_id, deployment.previous_model_id, plan, day=str(record.data_window_end))


def promote_candidate(con: duckdb.DuckDBPyConnection, candidate_id: str, actor: str, requires_approval: bool,
                      notifier: Notifier, plan: RolloutPlan) -> PointerOutcome:
    """Promote a gated candidate and start its rollout, or park it for a human when approval is required."""
    record = require_model(con, candidate_id)
    serving = get_production(con)
    serving_id = serving.model_id if serving else None
    if record.status == "production":
        return PointerOutcome("kept", serving_id, candidate_id, "already serving")
    failed = failed_gates(record)
    if record.status == "rejected" or failed:
        return PointerOutcome("kept", serving_id, candidate_id,
                              f"not promoted: failed gates {failed} ({record.status_reason or record.status})")
    if requires_approval:
        mark_pending_approval(con, candidate_id, f"gates passed; waiting for human approval (requested by {actor})")
        raise_alert(con, "approval_needed", "warning", candidate_id,
                    f"candidate {candidate_id} passed its gates and awaits approval: ct approve {candidate_id}",
                    {"actor": actor, "serving_model_id": serving_id}, notifier)
        return PointerOutcome("pending_approval", serving_id, candidate_id, "awaiting human approval")
    deployment = promote(con, candidate_id, actor=actor, reason=f"gates passed ({record.trigger}: "
                                                                  f"{record.trigger_reason})")
    _start_rollout_after(con, deployment, record, plan)
    return PointerOutcome("promoted", candidate_id, candidate_id, "gates passed")


def newest_ready_candidate(con: duckdb.DuckDBPyConnection) -> str | None:
    """The newest staging candidate that passed every error-severity gate, or None."""
    ready = [m for m in list_models(con, status="staging") if not failed_gates(m)]
    return ready[0].model_id if ready else None  # list_models is newest first


def approve(con: duckdb.DuckDBPyConnection, model_id: str, approver: str, reason: str, plan: RolloutPlan,
            override_failed_gates: bool = False) -> Deployment:
    """A human promotes a candidate. A candidate that failed a gate needs an explicit override,
    which is recorded with the approver's name and reason."""
    if not approver.strip() or not reason.strip():
        raise ValueError("an approval needs the approver's name and a reason")
    record = require_model(con, model_id)
    failed = failed_gates(record)
    if record.status == "production":
        raise ValueError(f"model {model_id} is already in production")
    if (failed or record.status == "rejected") and not override_failed_gates:
        raise ValueError(f"model {model_id} failed gates {failed} ({record.status_reason}); "
                         "approving it needs --override-failed-gates with a reason")
    if record.status == "rejected":
        # An override re-stages the model so the promotion rules still apply.
        con.execute("UPDATE model_registry SET status = 'staging', status_reason = ? WHERE model_id = ?",
                    [f"OVERRIDE of failed gates {failed} by {approver}: {reason}", model_id])
    label = "OVERRIDE of failed gates " + str(failed) + "; " if failed else ""
    deployment = promote(con, model_id, actor=f"human:{approver}", reason=f"{label}approved: {reason}")
    if deployment is None:
        raise ValueError(f"model {model_id} was not promoted")
    _start_rollout_after(con, deployment, record, plan)
    return deployment


def reject(con: duckdb.DuckDBPyConnection, model_id: str, reason: str, actor: str = "pipeline") -> Deployment | None:
    """Mark a candidate ``rejected`` (it can never be promoted) and log it; None if already rejected.

    The serving model cannot be rejected directly: roll it back first.
    """
    _require_text(reason, "reason")
    _require_text(actor, "actor")
    record = require_model(con, model_id)
    if record.status == "rejected":
        return None
    if record.status == "production":
        raise ValueError(f"model {model_id} is in production; roll it back to take it out of service")
    con.execute("BEGIN TRANSACTION")
    try:
        con.execute("UPDATE model_registry SET status = 'rejected', status_reason = ? WHERE model_id = ?",
                    [reason, model_id])
        deployment = _append_deployment(con, model_id, None, "reject", actor, reason)
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    return deployment


def reject_candidate(con: duckdb.DuckDBPyConnection, model_id: str, approver: str, reason: str) -> Deployment:
    """A human rejects a candidate waiting for approval (or any staged candidate)."""
    if not approver.strip() or not reason.strip():
        raise ValueError("a rejection needs the approver's name and a reason")
    require_model(con, model_id)
    deployment = reject(con, model_id, f"rejected by {approver}: {reason}", actor=f"human:{approver}")
    if deployment is None:
        raise ValueError(f"model {model_id} was already rejected")
    return deployment


def roll_back(con: duckdb.DuckDBPyConnection, actor: str, reason: str, notifier: Notifier) -> Deployment:
    """Put the model that served before the current one back into production (seconds, not a retrain) and alert.

    The target is the ``previous_model_id`` of the promotion that made the current model production,
    so repeated rollbacks walk back through the history. The rolled-back model becomes ``rejected``
    (so automation cannot promote it again). Refuses when nothing is in production, when there is no
    earlier model, or when that model was rejected.
    """
    _require_text(actor, "actor")
    _require_text(reason, "reason")
    current = get_production(con)
    if current is None:
        raise ValueError("cannot roll back: no model is in production")
    rows = con.execute(
        "SELECT previous_model_id FROM deployments WHERE model_id = ? AND action = 'promote' "
        "ORDER BY deployment_id DESC LIMIT 1",
        [current.model_id],
    ).fetchall()
    target = rows[0][0] if rows else None
    if target is None:
        raise ValueError(f"cannot roll back: model {current.model_id} has no previous production model")
    target_record = require_model(con, target)
    if target_record.status == "rejected":
        raise ValueError(f"cannot roll back to {target}: it was rejected ({target_record.status_reason})")
    deployment = _swap_production(con, target, "rollback", actor, reason, old_status="rejected")
    raise_alert(con, "rollback", "error", deployment.model_id,
                f"rolled back to {deployment.model_id} (was {deployment.previous_model_id}): {reason}",
                {"actor": actor, "rolled_back_model_id": deployment.previous_model_id}, notifier)
    return deployment


def restore(con: duckdb.DuckDBPyConnection, model_id: str, actor: str, reason: str) -> Deployment:
    """Roll production back to a named earlier model (not only the one just before it).

    Used when a chain of online updates degraded: the serving model returns to the last version that
    passed its gates. The model taken out of service becomes ``rejected``; the target must have served
    before (``retired``).
    """
    _require_text(actor, "actor")
    _require_text(reason, "reason")
    current = get_production(con)
    if current is None:
        raise ValueError("cannot restore: no model is in production")
    target = require_model(con, model_id)
    if target.model_id == current.model_id:
        raise ValueError(f"cannot restore {model_id}: it is already in production")
    if target.status != "retired":
        raise ValueError(f"cannot restore {model_id}: only a model that served before (retired) can be restored, "
                         f"it is {target.status}")
    return _swap_production(con, model_id, "rollback", actor, reason, old_status="rejected")


def choose_pointer_move(request: PointerRequest, serving_model_id: str | None) -> PointerMove:
    """The move ``request`` makes while ``serving_model_id`` serves.

    A rollback verdict names the model it judged. When a newer promotion has replaced that model the
    verdict is stale: rolling back now would remove the wrong model, and the newer model's own rollout
    judges it instead.

    >>> choose_pointer_move(PointerRequest(rollback=True, judged_model_id="m-old"), serving_model_id="m-new")
    'ignore_stale_verdict'
    >>> choose_pointer_move(PointerRequest(rollback=True, judged_model_id="m-new"), serving_model_id="m-new")
    'roll_back'
    >>> choose_pointer_move(PointerRequest(candidate_id="m-cand"), serving_model_id="m-new")
    'promote_candidate'
    """
    if request.rollback:
        if request.judged_model_id and request.judged_model_id != serving_model_id:
            return "ignore_stale_verdict"
        return "roll_back"
    return "promote_candidate" if request.candidate_id else "promote_newest_ready"


def move_production_pointer(con: duckdb.DuckDBPyConnection, request: PointerRequest, actor: str,
                            notifier: Notifier, plan: RolloutPlan) -> PointerOutcome:
    """Carry out what a `production_model` run asks: roll back, promote its candidate, or the newest ready one."""
    serving = get_production(con)
    serving_id = serving.model_id if serving else None
    move = choose_pointer_move(request, serving_id)
    if move == "ignore_stale_verdict":
        return PointerOutcome("kept", serving_id, request.judged_model_id,
                              f"stale rollback verdict for {request.judged_model_id}: "
                              f"{serving_id or 'no model'} serves now")
    if move == "roll_back":
        deployment = roll_back(con, actor, request.rollback_reason, notifier)
        return PointerOutcome("rolled_back", deployment.model_id, deployment.previous_model_id, deployment.reason)
    candidate_id = request.candidate_id if move == "promote_candidate" else newest_ready_candidate(con)
    if candidate_id is None:
        return PointerOutcome("kept", serving_id, None, "no newer gated candidate")
    return promote_candidate(con, candidate_id, actor, request.requires_approval, notifier, plan)
