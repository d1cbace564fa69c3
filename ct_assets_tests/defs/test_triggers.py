"""The trigger sensors, the daily policy schedule and the decision request sensor, ticked on a real
instance's event log."""

import math
from datetime import UTC, datetime, timedelta

import dagster as dg
import pytest
from dagster._core.definitions.freshness import FreshnessState, FreshnessStateChange

from ct_assets.core.decision.policy import label_rows
from ct_assets.defs.build import build_definitions
from ct_assets.defs.decision.request_sensor import decision_request_sensor
from ct_assets.defs.decision.triggers import (
    daily_policy_schedule,
    drift_sensor,
    freshness_sensor,
    label_sensor,
    performance_sensor,
)
from ct_assets.defs.run_requests import K8S_CONFIG_ENV, training_run_tags
from ct_assets.defs.tags import DECISION_DAY_TAG, REASON_TAG, TRAINING_RUN_TAG, TRIGGER_TAG
from ct_assets.defs.training.path_sensor import decision_sensor
from ct_assets.defs.training.periodic_retrain import periodic_retrain_schedule

DAY = "2025-02-10"


def report(instance, asset, day, **metadata):
    instance.report_runless_asset_event(dg.AssetMaterialization(asset_key=asset, partition=day, metadata=metadata))


def tick(sensor, instance, cursor=None, resources=None):
    return sensor(dg.build_sensor_context(instance=instance, cursor=cursor, resources=resources))


def newest_observation(instance):
    (record,) = instance.fetch_observations(dg.AssetKey("training_decision"), limit=1).records or [None]
    return str(record.storage_id) if record else None


def requested(instance, result=None):
    """Record a trigger tick's asks as the sensor daemon does, then tick the decision request sensor on
    the asks recorded since (a schedule records its own): the decision runs it requests."""
    after = newest_observation(instance) if result is not None else None
    for event in result.asset_events if result is not None else []:
        instance.report_runless_asset_event(event)
    return tick(decision_request_sensor, instance, after).run_requests


def drift(instance, day, scope, severity=0.4):
    report(instance, "drift_report", day, scope=scope, severity=severity, severity_level="medium",
           affected_segments=["region=south"] if scope == "local" else [])


def promoted(instance, model_id, window_end, outcome="promoted"):
    instance.report_runless_asset_event(dg.AssetMaterialization(
        asset_key="production_model", metadata={"model_id": model_id, "outcome": outcome,
                                                "data_window_end": window_end}))


def decision_run_for(instance, day):
    @dg.job
    def decision_placeholder():
        pass

    return instance.create_run_for_job(decision_placeholder, tags={DECISION_DAY_TAG: day})


def test_drift_sensor_asks_for_the_decision_of_drifted_days_only(instance):
    drift(instance, "2025-02-09", "none", severity=0.02)
    drift(instance, DAY, "local")
    result = tick(drift_sensor, instance)
    assert result.run_requests == []  # a trigger only asks: the decision request sensor requests
    (request,) = requested(instance, result)
    assert request.partition_key == DAY and request.run_key == f"decision:{DAY}"
    assert [k.to_user_string() for k in request.asset_selection] == ["training_decision"]
    assert request.tags[TRIGGER_TAG] == "drift" and request.tags[DECISION_DAY_TAG] == DAY
    assert "scope local" in request.tags[REASON_TAG] and "region=south" in request.tags[REASON_TAG]
    again = tick(drift_sensor, instance, result.cursor)
    assert again.asset_events == [] and again.cursor == result.cursor and requested(instance, again) == []


def test_a_day_gets_one_decision_run_whichever_sensors_fire(instance):
    drift(instance, DAY, "local")
    asked = tick(drift_sensor, instance)
    decision_run_for(instance, DAY)  # e.g. the drift sensor's ask was requested meanwhile
    assert requested(instance, asked) == []  # the day has its run: the late ask requests nothing
    report(instance, "concept_drift", DAY, verdict="degraded", concept_drift=True, beyond_covariate=True)
    result = tick(performance_sensor, instance)
    assert result.asset_events == [] and "already requested" in result.skip_reason.skip_message


def test_asks_of_several_triggers_for_a_day_make_one_run_that_names_them_all(instance, resources):
    drift(instance, DAY, "global")
    asks = [tick(drift_sensor, instance), tick(freshness_sensor, instance, resources=resources)]  # bootstrap
    for result in asks:
        for event in result.asset_events:
            instance.report_runless_asset_event(event)
    (request,) = requested(instance)
    assert request.run_key == f"decision:{DAY}" and request.tags[TRIGGER_TAG] == "drift+freshness"
    assert "scope global" in request.tags[REASON_TAG] and "bootstrap" in request.tags[REASON_TAG]


def test_performance_sensor_joins_concept_drift_and_complaints_of_a_day(instance):
    report(instance, "concept_drift", "2025-02-08", verdict="stable", concept_drift=False)
    report(instance, "concept_drift", DAY, verdict="degraded", concept_drift=True, beyond_covariate=True)
    report(instance, "complaint_report", DAY, alert=True, rate_ratio=1.6)
    report(instance, "complaint_report", "2025-02-11", alert=False, rate_ratio=1.0)
    result = tick(performance_sensor, instance)
    (request,) = requested(instance, result)
    assert request.partition_key == DAY and request.tags[TRIGGER_TAG] == "performance"
    assert "degraded" in request.tags[REASON_TAG] and "rate ratio 1.60" in request.tags[REASON_TAG]
    report(instance, "complaint_report", "2025-02-12", alert=True, rate_ratio=1.4)
    (later,) = requested(instance, tick(performance_sensor, instance, result.cursor))
    assert later.partition_key == "2025-02-12" and later.tags[REASON_TAG].startswith("complaints rose")


def test_label_sensor_counts_labels_since_the_model_changed(instance, resources):
    """The threshold is in days' worth of labels (the policy's batches' worth) of the typical recent day."""
    day_rows = 1_000
    days = resources["settings"].policy().labels.accumulated_trigger_batches
    threshold = label_rows(days, day_rows)
    before = math.ceil(days) - 1
    for index in range(before):
        report(instance, "labels", f"2025-01-{index + 1:02d}", rows_valid=day_rows)
    first = tick(label_sensor, instance, resources=resources)
    assert first.asset_events == [] and f"{before * day_rows} new labels" in first.skip_reason.skip_message
    promoted(instance, "m-1", "2025-02-01")  # the new model saw those labels: count restarts
    report(instance, "labels", "2025-02-02", rows_valid=day_rows)
    second = tick(label_sensor, instance, first.cursor, resources)
    assert second.asset_events == [] and f"{day_rows} new labels" in second.skip_reason.skip_message
    promoted(instance, "m-1", "2025-02-01", outcome="kept")  # nothing changed: keep counting
    cursor = second.cursor
    for index in range(math.ceil(days) - 1):
        report(instance, "labels", f"2025-02-{index + 3:02d}", rows_valid=day_rows)
        result = tick(label_sensor, instance, cursor, resources)
        cursor = result.cursor
    (request,) = requested(instance, result)
    assert request.tags[TRIGGER_TAG] == "labels" and f"(trigger {threshold})" in request.tags[REASON_TAG]


def test_freshness_sensor_bootstraps_then_waits_until_the_model_is_stale(instance, resources):
    drift(instance, "2025-02-01", "none")
    first = tick(freshness_sensor, instance, resources=resources)
    (request,) = requested(instance, first)
    assert request.tags[TRIGGER_TAG] == "freshness" and "bootstrap" in request.tags[REASON_TAG]
    max_age = resources["settings"].policy().staleness.max_age_days
    promoted(instance, "m-1", "2025-02-01")
    drift(instance, "2025-02-02", "none")
    fresh = tick(freshness_sensor, instance, first.cursor, resources)
    assert fresh.asset_events == [] and "fresh" in fresh.skip_reason.skip_message
    # Exactly max_age days old is not stale yet: the policy's staleness rule would decide `none`.
    boundary_day = (datetime(2025, 2, 1) + timedelta(days=int(max_age))).strftime("%Y-%m-%d")
    drift(instance, boundary_day, "none")
    boundary = tick(freshness_sensor, instance, fresh.cursor, resources)
    assert boundary.asset_events == [] and "fresh" in boundary.skip_reason.skip_message
    stale_day = (datetime(2025, 2, 1) + timedelta(days=int(max_age) + 1)).strftime("%Y-%m-%d")
    drift(instance, stale_day, "none")
    (stale,) = requested(instance, tick(freshness_sensor, instance, boundary.cursor, resources))
    assert stale.partition_key == stale_day and "data ends" in stale.tags[REASON_TAG]


def test_freshness_sensor_follows_the_freshness_policy_state(instance, resources):
    promoted(instance, "m-1", "2025-02-01")
    # The freshness daemon records this event when production_model's FreshnessPolicy fails.
    instance._report_runless_asset_event(FreshnessStateChange(
        key=dg.AssetKey("production_model"), previous_state=FreshnessState.PASS,
        new_state=FreshnessState.FAIL, state_change_timestamp=datetime.now(UTC).timestamp()))
    drift(instance, "2025-02-02", "none")
    (request,) = requested(instance, tick(freshness_sensor, instance, resources=resources))
    assert "freshness policy is FAIL" in request.tags[REASON_TAG]


def test_daily_policy_schedule_decides_the_newest_day_once(instance):
    repository = build_definitions().get_repository_def()
    context = dg.build_schedule_context(instance=instance, repository_def=repository)
    assert daily_policy_schedule.evaluate_tick(context).run_requests == [] and requested(instance) == []
    instance.add_dynamic_partitions("days", ["2025-02-01", "2025-02-02"])
    tick_data = daily_policy_schedule.evaluate_tick(context)
    assert tick_data.run_requests == [] and "asked decision_request_sensor" in tick_data.skip_message
    (request,) = requested(instance)
    assert request.partition_key == "2025-02-02" and request.tags[TRIGGER_TAG] == "schedule"
    decision_run_for(instance, "2025-02-02")
    assert "already has a decision run" in daily_policy_schedule.evaluate_tick(context).skip_message
    assert requested(instance) == []


def test_training_runs_carry_the_gpu_request_from_the_environment(instance, monkeypatch):
    gpu = '{"container_config": {"resources": {"limits": {"nvidia.com/gpu": 1}}}}'
    monkeypatch.setenv(K8S_CONFIG_ENV, gpu)
    report(instance, "training_decision", DAY, decision_id="dec-gpu", action="retrain", fired_rules=["drift_scope"],
           requires_approval=False)
    (request,) = tick(decision_sensor, instance).run_requests
    assert request.tags["dagster-k8s/config"] == gpu and request.tags[TRAINING_RUN_TAG] == "true"
    monkeypatch.setenv(K8S_CONFIG_ENV, "gpu please")
    with pytest.raises(ValueError, match=K8S_CONFIG_ENV):
        training_run_tags()


def test_periodic_retrain_is_one_training_run_at_a_time(instance):
    context = dg.build_schedule_context(instance=instance,
                                        repository_def=build_definitions().get_repository_def())
    (request,) = periodic_retrain_schedule.evaluate_tick(context).run_requests
    assert request.tags[TRAINING_RUN_TAG] == "true" and request.tags[TRIGGER_TAG] == "schedule"

    @dg.job
    def training_placeholder():
        pass

    instance.create_run_for_job(training_placeholder, tags={TRAINING_RUN_TAG: "true"})
    assert periodic_retrain_schedule.evaluate_tick(context).run_requests == []
