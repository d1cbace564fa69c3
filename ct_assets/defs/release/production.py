"""Deployment assets: the production pointer (promote / wait for approval / roll back), human
approvals from the UI, and the daily rollout monitor that ramps traffic or asks for a rollback."""

from datetime import timedelta

import dagster as dg
from dagster_duckdb import DuckDBResource

from ct_assets.core.release.deployment import (
    PointerRequest,
    approve,
    move_production_pointer,
    reject_candidate,
)
from ct_assets.core.release.registry import ensure_registry_tables, get_production
from ct_assets.core.release.rollout import RolloutPlan
from ct_assets.core.release.rollout_monitor import monitor_rollout_day
from ct_assets.defs.automation import eager_after_checks
from ct_assets.defs.data.features import features
from ct_assets.defs.data.ingest import labels
from ct_assets.defs.monitoring.assets import complaint_report
from ct_assets.defs.partitions import days_partitions
from ct_assets.defs.resources import DUCKDB_POOL, CTSettings, CTStorage
from ct_assets.defs.tags import ACTION_TAG, APPROVAL_TAG, REASON_TAG, ROLLBACK_MODEL_TAG, TRIGGER_TAG
from ct_assets.defs.training.candidates import CANDIDATE_ASSETS

OWNERS = ["team:ml-platform"]


def _candidate_of_run(context: dg.AssetExecutionContext) -> str | None:
    """The candidate model materialized earlier in this run, if any."""
    for asset in CANDIDATE_ASSETS:
        event = context.instance.get_latest_materialization_event(asset.key)
        if event is not None and event.run_id == context.run_id and event.asset_materialization is not None:
            return str(event.asset_materialization.metadata["model_id"].value)
    return None


@dg.asset(
    deps=list(CANDIDATE_ASSETS),
    group_name="deployment",
    kinds={"duckdb"},
    owners=OWNERS,
    pool=DUCKDB_POOL,
    # Shown in the UI: a model nobody refreshed for a week is stale whatever the drift says.
    freshness_policy=dg.FreshnessPolicy.time_window(fail_window=timedelta(days=7), warn_window=timedelta(days=3)),
    description="The serving model: an atomic pointer swap in `model_registry`, logged in `deployments`. "
                "Promotes this run's candidate when its blocking gates passed (high risk: parks it as "
                "`pending_approval` and alerts); with tag ct/action=rollback restores the previous model.",
)
def production_model(context: dg.AssetExecutionContext, duckdb: DuckDBResource,
                     settings: CTSettings) -> dg.MaterializeResult:
    tags = context.run.tags
    actor = f"dagster:{tags.get(TRIGGER_TAG, tags.get(ACTION_TAG, 'manual'))}:{context.run_id[:8]}"
    request = PointerRequest(
        rollback=tags.get(ACTION_TAG) == "rollback", judged_model_id=tags.get(ROLLBACK_MODEL_TAG) or None,
        rollback_reason=tags.get(REASON_TAG, "rollback requested"), candidate_id=_candidate_of_run(context),
        requires_approval=settings.risk_tier == "high" or tags.get(APPROVAL_TAG) == "true")
    with duckdb.get_connection() as con:
        ensure_registry_tables(con)
        moved = move_production_pointer(con, request, actor, settings.notifier(), RolloutPlan())
        production = get_production(con)
    metadata = {"outcome": moved.action, "reason": moved.reason}
    if production is None:  # e.g. the first model awaits a human's approval
        return dg.MaterializeResult(metadata={"model_id": "", **metadata})
    return dg.MaterializeResult(metadata={
        "model_id": production.model_id, **metadata,
        "training_path": production.training_path,
        "data_window_end": str(production.data_window_end),
        "manifest": dg.MetadataValue.path(f"{production.artifact_path}/manifest.json"),
    })


class ApprovalConfig(dg.Config):
    """A human decision on a candidate, entered in the UI's launchpad."""

    model_id: str
    approver: str
    reason: str
    approve: bool = True
    override_failed_gates: bool = False


@dg.asset(
    deps=[production_model],
    group_name="deployment",
    kinds={"duckdb"},
    owners=OWNERS,
    pool=DUCKDB_POOL,
    description="Human approval from the UI: materialize with config (model_id, approver, reason, approve, "
                "override_failed_gates) to promote or reject a candidate. Same effect and record as "
                "`ct approve` / `ct reject`; an override of a failed gate is recorded as such.",
)
def model_approval(config: ApprovalConfig, duckdb: DuckDBResource) -> dg.MaterializeResult:
    with duckdb.get_connection() as con:
        ensure_registry_tables(con)
        if config.approve:
            deployment = approve(con, config.model_id, config.approver, config.reason, RolloutPlan(),
                                 override_failed_gates=config.override_failed_gates)
        else:
            deployment = reject_candidate(con, config.model_id, config.approver, config.reason)
    return dg.MaterializeResult(metadata={
        "model_id": config.model_id, "action": deployment.action, "actor": deployment.actor,
        "reason": deployment.reason, "deployment_id": deployment.deployment_id,
    })


@dg.asset(
    partitions_def=days_partitions,
    deps=[features, labels, complaint_report],
    group_name="deployment",
    kinds={"duckdb"},
    owners=OWNERS,
    pool=DUCKDB_POOL,
    automation_condition=eager_after_checks(),
    description="Each day of a staged rollout (1% -> 5% -> 25% -> 100%): the newly promoted and the previous "
                "model on the same recently labelled rows, plus the complaint-rate ratio. Advances the "
                "traffic share, holds, or records a rollback verdict that `rollback_sensor` acts on. "
                "Rows in `rollouts` / `rollout_steps`.",
)
def rollout_monitor(context: dg.AssetExecutionContext, duckdb: DuckDBResource,
                    storage: CTStorage) -> dg.MaterializeResult:
    with duckdb.get_connection() as con:
        step = monitor_rollout_day(con, storage.models_dir, context.partition_key)
    if step is None:
        return dg.MaterializeResult(metadata={"verdict": "no_rollout", "reason": "no rollout in progress"})
    return dg.MaterializeResult(metadata={
        "verdict": step.verdict, "reason": step.reason, "rollout_id": step.rollout_id,
        "model_id": step.model_id, "previous_model_id": step.previous_model_id,
        "traffic_share": step.traffic_share, "live": dg.MetadataValue.json(step.live or {}),
    })
