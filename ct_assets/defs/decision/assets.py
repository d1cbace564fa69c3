"""The day's retrain-vs-fine-tune decision: the policy weighs all the evidence and records its action."""

import dagster as dg
from dagster_duckdb import DuckDBResource

from ct_assets.core.decision.evidence import gather_evidence
from ct_assets.core.decision.policy import decide
from ct_assets.core.decision.records import record_decision
from ct_assets.core.ops.alerts import raise_alert
from ct_assets.defs.data.ingest import labels
from ct_assets.defs.monitoring.assets import (
    complaint_report,
    concept_drift,
    drift_report,
)
from ct_assets.defs.partitions import days_partitions
from ct_assets.defs.resources import DUCKDB_POOL, CTSettings
from ct_assets.defs.tags import TRIGGER_TAG

OWNERS = ["team:ml-platform"]


@dg.asset(
    partitions_def=days_partitions,
    deps=[drift_report, concept_drift, complaint_report, labels],
    group_name="training",
    kinds={"duckdb", "python"},
    owners=OWNERS,
    pool=DUCKDB_POOL,
    # No automation condition: the trigger sensors and the daily policy schedule ask for it and
    # decision_request_sensor requests it, so quiet days cost no decision.
    description="A day's decision from evidence (drift scope and severity, concept drift, complaints, "
                "labels, model age, fine-tunes since the last retrain, compute budget, risk tier): "
                "none | fine_tune | retrain | escalate_to_human, with the reasons in plain language. "
                "Asked for by the trigger sensors and the daily policy schedule (its observations), "
                "requested once a day by `decision_request_sensor` (run tags ct/trigger, ct/reason); "
                "recorded in `decisions`; `decision_sensor` starts the chosen training path.",
)
def training_decision(context: dg.AssetExecutionContext, duckdb: DuckDBResource,
                      settings: CTSettings) -> dg.MaterializeResult:
    policy = settings.policy()
    with duckdb.get_connection() as con:
        evidence = gather_evidence(con, context.partition_key, policy, risk_tier=settings.risk_tier)
        decision = decide(evidence, policy)
        record = record_decision(con, context.partition_key, decision, evidence)
        if decision.action == "escalate_to_human":
            raise_alert(con, "escalation", "warning", record.decision_id,
                        f"{context.partition_key}: the policy asks a human to decide", {"reasons": list(decision.reasons)},
                        settings.notifier())
    return dg.MaterializeResult(metadata={
        "decision_id": record.decision_id,
        "action": decision.action,
        "requires_approval": decision.requires_approval,
        "fired_rules": list(decision.fired_rules),
        "reasons": dg.MetadataValue.md("\n".join(f"- {reason}" for reason in decision.reasons) or "- nothing fired"),
        "estimated_cost": decision.estimated_cost,
        "budget_left_after": decision.budget_left_after,
        "policy_version": decision.policy_version,
        "trigger": context.run.tags.get(TRIGGER_TAG, "manual"),
    })
