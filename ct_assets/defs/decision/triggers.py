"""Trigger sensors and the daily policy schedule: each watches one kind of evidence and asks for a day's decision.

Drift, performance (concept drift and complaints), label accumulation and freshness each have their
own sensor, reading only asset metadata from the event log with a cursor; the schedule asks once a
day. A trigger does not request a run and does not choose the training path: it reports its ask as
an observation of the day's `training_decision` partition, `decision_request_sensor` requests that
day's decision once (see `defs/run_requests.py`), the decision weighs *all* the evidence with the
policy and records its action (possibly `none`), and `decision_sensor` starts the path it chose.
"""

import statistics
from datetime import date

import dagster as dg

from ct_assets.core.decision.policy import is_stale, label_rows
from ct_assets.defs.automation import running_sensor
from ct_assets.defs.data.ingest import labels
from ct_assets.defs.decision.assets import training_decision
from ct_assets.defs.event_log import (
    dump_cursor,
    load_cursor,
    materializations_after,
    new_materializations,
)
from ct_assets.defs.monitoring.assets import (
    complaint_report,
    concept_drift,
    drift_report,
)
from ct_assets.defs.partitions import days_partitions
from ct_assets.defs.release.production import production_model
from ct_assets.defs.resources import CTSettings
from ct_assets.defs.run_requests import has_decision_run, trigger_report

STALE_FRESHNESS_STATES = ("WARN", "FAIL")


def _report(context: dg.SensorEvaluationContext, trigger: str, reasons_by_day: dict[str, str], cursor: str | None,
            quiet: str) -> dg.SensorResult:
    """Report ``trigger``'s asks for the days not decided yet; `decision_request_sensor` requests the runs."""
    asked = {day: reason for day, reason in sorted(reasons_by_day.items())
             if not has_decision_run(context.instance, day)}
    decided = sorted(set(reasons_by_day) - set(asked))
    notes = ([f"asked decision_request_sensor for the decision of {', '.join(asked)}"] if asked else []) + (
        [f"decision already requested for {', '.join(decided)}"] if decided else [])
    return dg.SensorResult(asset_events=[trigger_report(trigger, day, reason) for day, reason in asked.items()],
                           skip_reason="; ".join(notes) or quiet, cursor=cursor)


@running_sensor(
    description="Data drift trigger: a drift report with scope local or global asks for that day's "
                "training decision. Reads drift_report metadata from the event log with a cursor.",
)
def drift_sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult:
    reports, cursor = new_materializations(context, drift_report.key)
    fired = {day: f"data drift on {day}: scope {meta['scope']}, severity {float(meta['severity']):.2f} "
                  f"({meta['severity_level']}), segments {meta.get('affected_segments') or 'none'}"
             for day, meta in reports if meta.get("scope") in ("local", "global")}
    return _report(context, "drift", fired, cursor, f"{len(reports)} new drift reports, none drifted")


@running_sensor(
    description="Performance trigger: concept drift (the serving model's labelled metrics fell) or a "
                "complaint alert asks for that day's training decision. Reads concept_drift and "
                "complaint_report metadata from the event log with a cursor.",
)
def performance_sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult:
    cursor = load_cursor(context)
    concept, cursor["concept_drift"] = materializations_after(context.instance, concept_drift.key,
                                                              cursor.get("concept_drift"))
    complaint, cursor["complaints"] = materializations_after(context.instance, complaint_report.key,
                                                             cursor.get("complaints"))
    fired: dict[str, str] = {}
    for _, day, meta in concept:
        if meta.get("concept_drift") or meta.get("verdict") == "degraded":
            fired[day] = f"performance on {day}: {meta.get('verdict')} (beyond covariate drift: " \
                         f"{meta.get('beyond_covariate')})"
    for _, day, meta in complaint:
        if meta.get("alert"):
            note = f"complaints rose on {day}: rate ratio {float(meta.get('rate_ratio') or 0):.2f}"
            fired[day] = f"{fired[day]}; {note}" if day in fired else note
    return _report(context, "performance", fired, dump_cursor(cursor),
                   f"{len(concept)} concept-drift and {len(complaint)} complaint reports, no degradation")


@running_sensor(
    description="Label trigger: when the labels ingested since the last change of the production model "
                "reach the policy's labels.accumulated_trigger_batches (days' worth), asks for a training decision. Counts "
                "from labels/production_model metadata in the event log (cursor), never the warehouse.",
)
def label_sensor(context: dg.SensorEvaluationContext, settings: CTSettings) -> dg.SensorResult:
    cursor = load_cursor(context)
    arrived, cursor["labels"] = materializations_after(context.instance, labels.key, cursor.get("labels"))
    deployed, cursor["production"] = materializations_after(context.instance, production_model.key,
                                                            cursor.get("production"))
    # Labels ingested before the newest change of the serving model were available to it.
    changes = [storage_id for storage_id, _, meta in deployed if meta.get("outcome") in ("promoted", "rolled_back")]
    counted = cursor.get("since_change", 0) if not changes else 0
    counted += sum(int(meta.get("rows_valid") or 0) for storage_id, _, meta in arrived
                   if not changes or storage_id > changes[-1])
    # The policy's threshold is in days' worth of labels: a typical day is the median of the days that
    # arrived in this tick (the last tick's when none did; the cursor holds integers only).
    days = [int(meta.get("rows_valid") or 0) for _, _, meta in arrived]
    typical = int(statistics.median(days)) if days else cursor.get("typical_day_rows", 0)
    cursor["typical_day_rows"] = typical
    threshold = label_rows(settings.policy().labels.accumulated_trigger_batches, typical)
    fired: dict[str, str] = {}
    if counted >= threshold and arrived:
        day = max(day for _, day, _ in arrived)
        fired[day] = f"{counted} new labels since the production model last changed (trigger {threshold})"
        counted = 0
    cursor["since_change"] = counted
    return _report(context, "labels", fired, dump_cursor(cursor),
                   f"{counted} new labels since the last model change (< {threshold})")


@running_sensor(
    description="Freshness trigger: after each day's monitoring, asks for a training decision when no "
                "model serves yet (bootstrap), when production_model's FreshnessPolicy is WARN/FAIL "
                "(wall clock), or when the serving model's data window is older than the policy's "
                "staleness.max_age_days (data days).",
)
def freshness_sensor(context: dg.SensorEvaluationContext, settings: CTSettings) -> dg.SensorResult:
    reports, cursor = new_materializations(context, drift_report.key)
    if not reports:
        return dg.SensorResult(skip_reason="no newly monitored day", cursor=cursor)
    day = max(d for d, _ in reports)
    latest = context.instance.get_latest_materialization_event(production_model.key)
    meta = {k: v.value for k, v in latest.asset_materialization.metadata.items()} if (
        latest and latest.asset_materialization) else {}
    state = context.instance.get_freshness_state_records([production_model.key]).get(production_model.key)
    policy = settings.policy()
    reason = None
    if not meta.get("model_id"):
        reason = f"bootstrap: no model serves yet ({day})"
    elif state is not None and state.freshness_state.value in STALE_FRESHNESS_STATES:
        reason = f"production_model freshness policy is {state.freshness_state.value}"
    elif meta.get("data_window_end") and is_stale(
            age := (date.fromisoformat(day) - date.fromisoformat(str(meta["data_window_end"]))).days, policy):
        reason = f"the serving model's data ends {age} days before {day} (max {policy.staleness.max_age_days:g})"
    if reason is None:
        return dg.SensorResult(skip_reason=f"production model fresh as of {day}", cursor=cursor)
    return _report(context, "freshness", {day: reason}, cursor, "")


TRIGGER_SENSORS = (drift_sensor, performance_sensor, label_sensor, freshness_sensor)


@dg.schedule(
    cron_schedule="0 3 * * *",
    # A schedule must name a target; this one never requests it (it reports, see below).
    target=[training_decision],
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Cron trigger: asks for the policy's decision on the newest landed day once a day, so "
                "rules no sensor watches (technical debt, budget, high-risk proactive retraining) are "
                "weighed even on quiet days. Same policy, same decision record.",
)
def daily_policy_schedule(context: dg.ScheduleEvaluationContext) -> dg.SkipReason:
    days = context.instance.get_dynamic_partitions(days_partitions.name)
    if not days:
        return dg.SkipReason("no landed day yet")
    day = max(days)
    if has_decision_run(context.instance, day):
        return dg.SkipReason(f"{day} already has a decision run")
    # A schedule returns no asset events, so it reports its ask itself, like the trigger sensors'.
    context.instance.report_runless_asset_event(trigger_report("schedule", day, "daily policy evaluation"))
    return dg.SkipReason(f"asked decision_request_sensor for the decision of {day}")
