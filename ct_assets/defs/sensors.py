"""Sensors: new landed days -> ingest runs; drift or staleness -> a candidate model run.

Sensors never read raw data or open the DuckDB file (a sensor tick must not contend with the
single DuckDB writer): they list landing folder names or read asset metadata from the
instance's event log, with a cursor.
"""


import dagster as dg

from ct_assets.core.ingest import list_landed_days
from ct_assets.core.triggers import TriggerThresholds, find_triggers
from ct_assets.defs.assets.deployment import production_model
from ct_assets.defs.assets.features import features
from ct_assets.defs.assets.ingest import complaints, labels, raw_events
from ct_assets.defs.assets.monitoring import drift_report
from ct_assets.defs.assets.training import (
    DRIFT_REPORT_TAG,
    REASON_TAG,
    TRIGGER_TAG,
    WINDOW_END_TAG,
    candidate_model,
)
from ct_assets.defs.partitions import days_partitions
from ct_assets.defs.resources import CTSettings, CTStorage


@dg.sensor(
    # One run per landed day carries it all the way to its drift report; blocking checks stop the
    # run early on bad data. (Eager automation covers re-materializations made by hand.)
    target=[raw_events, labels, complaints, features, drift_report],
    minimum_interval_seconds=10,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Adds a partition for each new complete day folder in data/landing/ and runs that day "
                "from ingest to drift report.",
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


def _latest_metadata(context: dg.SensorEvaluationContext, key: dg.AssetKey) -> dict[str, object] | None:
    event = context.instance.get_latest_materialization_event(key)
    if event is None or event.asset_materialization is None:
        return None
    return {name: value.value for name, value in event.asset_materialization.metadata.items()}


@dg.sensor(
    target=[candidate_model, production_model],
    minimum_interval_seconds=15,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Requests a candidate model (then promotion) when a drift report breaches "
                "`drift_trigger_severity`, when the production model is older than `max_model_age_days`, "
                "or to bootstrap the first model once enough labels exist. Reads asset metadata from "
                "the event log with a cursor; never raw data or the DuckDB file.",
)
def training_trigger_sensor(context: dg.SensorEvaluationContext,
                            settings: CTSettings) -> dg.SensorResult | dg.SkipReason:
    after = int(context.cursor) if context.cursor else None
    reports = context.instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=drift_report.key, after_storage_id=after), limit=500, ascending=True)
    cursor = str(reports.records[-1].storage_id) if reports.records else context.cursor
    production = _latest_metadata(context, production_model.key)
    candidate = _latest_metadata(context, candidate_model.key)
    # The newest day that made it through the whole chain (features, drift report) is the
    # training window's end: a day that only landed has no features yet.
    latest_report = context.instance.get_latest_materialization_event(drift_report.key)
    latest_day = latest_report.dagster_event.partition if latest_report and latest_report.dagster_event else None
    findings = find_triggers(
        drift_reports=[(r.partition_key or "", {k: v.value for k, v in r.asset_materialization.metadata.items()})
                       for r in reports.records if r.asset_materialization is not None],
        production=production, last_candidate=candidate, latest_day=latest_day,
        labelled_rows=int((_latest_metadata(context, labels.key) or {}).get("labelled_rows_total", 0) or 0),
        thresholds=TriggerThresholds(settings.drift_trigger_severity, settings.max_model_age_days,
                                     settings.min_training_rows))
    if not findings:
        return dg.SensorResult(skip_reason="no drift breach, stale model or bootstrap need", cursor=cursor)
    return dg.SensorResult(run_requests=[
        dg.RunRequest(run_key=f.run_key, tags={
            TRIGGER_TAG: f.kind, REASON_TAG: f.reason[:1000], WINDOW_END_TAG: f.window_end,
            **({DRIFT_REPORT_TAG: f.drift_report_id} if f.drift_report_id else {})})
        for f in findings], cursor=cursor)
