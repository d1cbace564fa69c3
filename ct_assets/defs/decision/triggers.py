"""Trigger sensors: each watches one kind of evidence and asks for the day's `training_decision`.

Drift, performance (concept drift and complaints), label accumulation and freshness each have their
own sensor, reading only asset metadata from the event log with a cursor. A trigger does not choose
the training path: it requests the decision, which weighs *all* the evidence with the policy and
records its action (possibly `none`); `decision_sensor` then starts the path it chose. A day gets at
most one decision run whichever sensors fire (run tag ct/decision_day), and the decision id, derived
from day + evidence + policy version, is the training run's key, so no decision trains twice.
"""

from datetime import date

import dagster as dg

from ct_assets.defs.data.ingest import labels
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
from ct_assets.defs.release.production import production_model
from ct_assets.defs.resources import CTSettings
from ct_assets.defs.training.candidates import REASON_TAG, TRIGGER_TAG, training_decision

DECISION_DAY_TAG = "ct/decision_day"
STALE_FRESHNESS_STATES = ("WARN", "FAIL")


def decision_requests(context: dg.SensorEvaluationContext, trigger: str,
                      reasons_by_day: dict[str, str]) -> tuple[list[dg.RunRequest], list[str]]:
    """Run requests for the days that have no decision run yet, and the days skipped because they have."""
    requests, skipped = [], []
    for day, reason in sorted(reasons_by_day.items()):
        if context.instance.get_run_records(dg.RunsFilter(tags={DECISION_DAY_TAG: day}), limit=1):
            skipped.append(day)
            continue
        requests.append(dg.RunRequest(
            partition_key=day, run_key=f"decision:{day}", asset_selection=[training_decision.key],
            tags={TRIGGER_TAG: trigger, REASON_TAG: reason[:1000], DECISION_DAY_TAG: day}))
    return requests, skipped


def _result(context: dg.SensorEvaluationContext, trigger: str, reasons_by_day: dict[str, str], cursor: str | None,
            quiet: str) -> dg.SensorResult:
    requests, skipped = decision_requests(context, trigger, reasons_by_day)
    if requests:
        return dg.SensorResult(run_requests=requests, cursor=cursor)
    why = f"{quiet}" if not skipped else f"decision already requested for {', '.join(skipped)}"
    return dg.SensorResult(skip_reason=why, cursor=cursor)


@dg.sensor(
    target=[training_decision],
    minimum_interval_seconds=10,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Data drift trigger: a drift report with scope local or global asks for that day's "
                "training decision. Reads drift_report metadata from the event log with a cursor.",
)
def drift_sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult:
    reports, cursor = new_materializations(context, drift_report.key)
    fired = {day: f"data drift on {day}: scope {meta['scope']}, severity {float(meta['severity']):.2f} "
                  f"({meta['severity_level']}), segments {meta.get('affected_segments') or 'none'}"
             for day, meta in reports if meta.get("scope") in ("local", "global")}
    return _result(context, "drift", fired, cursor, f"{len(reports)} new drift reports, none drifted")


@dg.sensor(
    target=[training_decision],
    minimum_interval_seconds=10,
    default_status=dg.DefaultSensorStatus.RUNNING,
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
    return _result(context, "performance", fired, dump_cursor(cursor),
                   f"{len(concept)} concept-drift and {len(complaint)} complaint reports, no degradation")


@dg.sensor(
    target=[training_decision],
    minimum_interval_seconds=10,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Label trigger: when the labels ingested since the last change of the production model "
                "reach the policy's labels.accumulated_trigger, asks for a training decision. Counts "
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
    threshold = settings.policy().labels.accumulated_trigger
    fired: dict[str, str] = {}
    if counted >= threshold and arrived:
        day = max(day for _, day, _ in arrived)
        fired[day] = f"{counted} new labels since the production model last changed (trigger {threshold})"
        counted = 0
    cursor["since_change"] = counted
    return _result(context, "labels", fired, dump_cursor(cursor),
                   f"{counted} new labels since the last model change (< {threshold})")


@dg.sensor(
    target=[training_decision],
    minimum_interval_seconds=10,
    default_status=dg.DefaultSensorStatus.RUNNING,
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
    max_age = settings.policy().staleness.max_age_days
    reason = None
    if not meta.get("model_id"):
        reason = f"bootstrap: no model serves yet ({day})"
    elif state is not None and state.freshness_state.value in STALE_FRESHNESS_STATES:
        reason = f"production_model freshness policy is {state.freshness_state.value}"
    elif meta.get("data_window_end") and (
            age := (date.fromisoformat(day) - date.fromisoformat(str(meta["data_window_end"]))).days) >= max_age:
        reason = f"the serving model's data ends {age} days before {day} (max {max_age:g})"
    if reason is None:
        return dg.SensorResult(skip_reason=f"production model fresh as of {day}", cursor=cursor)
    return _result(context, "freshness", {day: reason}, cursor, "")


TRIGGER_SENSORS = (drift_sensor, performance_sensor, label_sensor, freshness_sensor)
