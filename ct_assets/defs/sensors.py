"""Sensors: a landed day -> its run to the day's decision; a decision -> the chosen training path.

Sensors never read raw data or open the DuckDB file (a sensor tick must not contend with the
single DuckDB writer): they list landing folder names or read asset metadata from the
instance's event log, with a cursor.
"""


import dagster as dg

TRAINING_RUN_TAG = "ct/training_run"
IN_FLIGHT = [dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.NOT_STARTED, dg.DagsterRunStatus.STARTING,
             dg.DagsterRunStatus.STARTED]

from ct_assets.core.ingest import list_landed_days
from ct_assets.defs.assets.deployment import (
    ACTION_TAG,
    production_model,
    rollout_monitor,
)
from ct_assets.defs.assets.features import features
from ct_assets.defs.assets.ingest import complaints, labels, raw_events
from ct_assets.defs.assets.monitoring import (
    complaint_report,
    concept_drift,
    drift_report,
)
from ct_assets.defs.assets.training import (
    APPROVAL_TAG,
    CANDIDATE_ASSETS,
    DECISION_TAG,
    REASON_TAG,
    TRIGGER_TAG,
    WINDOW_END_TAG,
    finetuned_candidate,
    retrained_candidate,
    training_decision,
)
from ct_assets.defs.partitions import days_partitions
from ct_assets.defs.resources import CTStorage


@dg.sensor(
    # One run per landed day carries it all the way to its drift report; blocking checks stop the
    # run early on bad data. (Eager automation covers re-materializations made by hand.)
    target=[raw_events, labels, complaints, features, drift_report, concept_drift, complaint_report,
            training_decision, rollout_monitor],
    minimum_interval_seconds=10,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Adds a partition for each new complete day folder in data/landing/ and runs that day "
                "from ingest through monitoring to the day's training decision.",
)
def landing_sensor(context: dg.SensorEvaluationContext, storage: CTStorage) -> dg.SensorResult | dg.SkipReason:
    landed = list_landed_days(storage.landing_dir)
    # Cursor = newest day already requested; the partition set also catches a day that lands late.
    known = set(context.instance.get_dynamic_partitions(days_partitions.name))
    new_days = [day for day in landed if day not in known]
    if not new_days:
        return dg.SkipReason(f"no new day folders ({len(landed)} landed, newest {context.cursor or 'none'})")
    return dg.SensorResult(
        run_requests=[dg.RunRequest(partition_key=day, run_key=f"landed:{day}", tags={"ct/trigger": "landing"})
                      for day in new_days],
        dynamic_partitions_requests=[days_partitions.build_add_request(new_days)],
        cursor=max([*new_days, context.cursor or ""]),
    )


def _new_materializations(context: dg.SensorEvaluationContext,
                          key: dg.AssetKey) -> tuple[list[tuple[str, dict[str, object]]], str | None]:
    """(partition, metadata) of ``key``'s materializations since the cursor, and the new cursor."""
    after = int(context.cursor) if context.cursor else None
    new = context.instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=key, after_storage_id=after), limit=500, ascending=True)
    cursor = str(new.records[-1].storage_id) if new.records else context.cursor
    events = [(r.partition_key or "",
               {k: v.value for k, v in r.asset_materialization.metadata.items()} if r.asset_materialization else {})
              for r in new.records]
    return events, cursor


def _main_trigger(fired_rules: list[str]) -> str:
    """The rule that best names why a candidate was asked for (for run tags and the registry)."""
    for rule in ("bootstrap", "drift_scope", "concept_drift", "falling_metric", "rising_complaints",
                 "staleness", "label_accumulation", "architecture_change", "technical_debt"):
        if rule in fired_rules:
            return rule
    return fired_rules[0] if fired_rules else "policy"


@dg.sensor(
    target=[*CANDIDATE_ASSETS, production_model],
    minimum_interval_seconds=10,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Starts the training path each day's `training_decision` chose (retrained_candidate or "
                "finetuned_candidate, then production_model), tagged with the decision id and reasons. "
                "Reads decisions from the event log with a cursor; the decision id is the run key, so a "
                "re-evaluated tick never starts a second run for the same decision.",
)
def decision_sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult:
    decisions, cursor = _new_materializations(context, training_decision.key)
    wanted = [(day, meta) for day, meta in decisions if meta.get("action") in ("retrain", "fine_tune")]
    if not wanted:
        return dg.SensorResult(skip_reason=f"{len(decisions)} new decisions, none asks for training",
                               cursor=cursor)
    # One training run at a time: decisions taken while a candidate is being built were taken
    # without knowing its outcome; the next day's decision will see it.
    in_flight = context.instance.get_run_records(
        dg.RunsFilter(tags={TRAINING_RUN_TAG: "true"}, statuses=IN_FLIGHT), limit=1)
    if in_flight:
        return dg.SensorResult(skip_reason=f"training run {in_flight[0].dagster_run.run_id[:8]} still in flight; "
                                           f"{len(wanted)} decision(s) superseded", cursor=cursor)
    # When several days were decided at once (catching up), the newest decision supersedes the rest.
    day, meta = max(wanted, key=lambda item: item[0])
    candidate = retrained_candidate if meta["action"] == "retrain" else finetuned_candidate
    fired = [str(rule) for rule in meta.get("fired_rules", [])]
    return dg.SensorResult(run_requests=[dg.RunRequest(
        run_key=str(meta["decision_id"]),
        asset_selection=[candidate.key, production_model.key],
        tags={TRAINING_RUN_TAG: "true", DECISION_TAG: str(meta["decision_id"]), TRIGGER_TAG: _main_trigger(fired),
              REASON_TAG: "; ".join(fired)[:1000], WINDOW_END_TAG: day,
              APPROVAL_TAG: str(bool(meta.get("requires_approval"))).lower()})], cursor=cursor)


periodic_retrain_schedule = dg.ScheduleDefinition(
    name="periodic_retrain",
    cron_schedule="0 3 * * 0",
    target=[retrained_candidate, production_model],
    tags={TRIGGER_TAG: "schedule", REASON_TAG: "weekly periodic retrain (the cron baseline)"},
    # The baseline to compare the evidence-driven policy against; switch it on in the UI.
    default_status=dg.DefaultScheduleStatus.STOPPED,
    description="Cron baseline: retrain from scratch every Sunday 03:00, gates still apply.",
)


@dg.sensor(
    target=[production_model],
    minimum_interval_seconds=10,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Rolls back automatically: when `rollout_monitor` finds the newly promoted model worse than "
                "the previous one (live metric or complaints), requests `production_model` with "
                "ct/action=rollback, which restores the previous model and alerts.",
)
def rollback_sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult:
    verdicts, cursor = _new_materializations(context, rollout_monitor.key)
    rollbacks = [meta for _, meta in verdicts if meta.get("verdict") == "rollback"]
    if not rollbacks:
        return dg.SensorResult(skip_reason=f"{len(verdicts)} new rollout verdicts, no rollback", cursor=cursor)
    meta = rollbacks[-1]
    return dg.SensorResult(run_requests=[dg.RunRequest(
        run_key=f"rollback:{meta['rollout_id']}",
        asset_selection=[production_model.key],
        tags={ACTION_TAG: "rollback", REASON_TAG: str(meta.get("reason", ""))[:1000]})], cursor=cursor)
