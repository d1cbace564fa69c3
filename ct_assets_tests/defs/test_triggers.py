"""The trigger sensors and the daily policy schedule, ticked on a real instance's event log."""

from datetime import UTC, datetime, timedelta

import dagster as dg
import pytest
from dagster._core.definitions.freshness import FreshnessState, FreshnessStateChange

from ct_assets.defs.build import build_definitions
from ct_assets.defs.decision.schedules import (
    K8S_CONFIG_ENV,
    TRAINING_RUN_TAG,
    daily_policy_schedule,
    decision_sensor,
    periodic_retrain_schedule,
    training_run_tags,
)
from ct_assets.defs.decision.triggers import (
    DECISION_DAY_TAG,
    drift_sensor,
    freshness_sensor,
    label_sensor,
    performance_sensor,
)

DAY = "2025-02-10"


def report(instance, asset, day, **metadata):
    instance.report_runless_asset_event(dg.AssetMaterialization(asset_key=asset, partition=day, metadata=metadata))


def tick(sensor, instance, cursor=None, resources=None):
    return sensor(dg.build_sensor_context(instance=instance, cursor=cursor, resources=resources))


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
    (request,) = result.run_requests
    assert request.partition_key == DAY and request.run_key == f"decision:{DAY}"
    assert [k.to_user_string() for k in request.asset_selection] == ["training_decision"]
    assert request.tags["ct/trigger"] == "drift" and request.tags[DECISION_DAY_TAG] == DAY
    assert "scope local" in request.tags["ct/reason"] and "region=south" in request.tags["ct/reason"]
    again = tick(drift_sensor, instance, result.cursor)
    assert again.run_requests == [] and again.cursor == result.cursor


def test_a_day_gets_one_decision_run_whichever_sensors_fire(instance):
    decision_run_for(instance, DAY)  # e.g. the drift sensor already asked
    report(instance, "concept_drift", DAY, verdict="degraded", concept_drift=True, beyond_covariate=True)
    result = tick(performance_sensor, instance)
    assert result.run_requests == [] and "already requested" in result.skip_reason.skip_message


def test_performance_sensor_joins_concept_drift_and_complaints_of_a_day(instance):
    report(instance, "concept_drift", "2025-02-08", verdict="stable", concept_drift=False)
    report(instance, "concept_drift", DAY, verdict="degraded", concept_drift=True, beyond_covariate=True)
    report(instance, "complaint_report", DAY, alert=True, rate_ratio=1.6)
    report(instance, "complaint_report", "2025-02-11", alert=False, rate_ratio=1.0)
    result = tick(performance_sensor, instance)
    (request,) = result.run_requests
    assert request.partition_key == DAY and request.tags["ct/trigger"] == "performance"
    assert "degraded" in request.tags["ct/reason"] and "rate ratio 1.60" in request.tags["ct/reason"]
    report(instance, "complaint_report", "2025-02-12", alert=True, rate_ratio=1.4)
    (later,) = tick(performance_sensor, instance, result.cursor).run_requests
    assert later.partition_key == "2025-02-12" and later.tags["ct/reason"].startswith("complaints rose")


def test_label_sensor_counts_labels_since_the_model_changed(instance, resources):
    threshold = resources["settings"].policy().labels.accumulated_trigger
    report(instance, "labels", "2025-02-01", rows_valid=threshold - 1)
    first = tick(label_sensor, instance, resources=resources)
    assert first.run_requests == [] and f"{threshold - 1} new labels" in first.skip_reason.skip_message
    promoted(instance, "m-1", "2025-02-01")  # the new model saw those labels: count restarts
    report(instance, "labels", "2025-02-02", rows_valid=threshold // 2)
    second = tick(label_sensor, instance, first.cursor, resources)
    assert second.run_requests == [] and f"{threshold // 2} new labels" in second.skip_reason.skip_message
    promoted(instance, "m-1", "2025-02-01", outcome="kept")  # nothing changed: keep counting
    report(instance, "labels", "2025-02-03", rows_valid=threshold // 2 + 1)
    third = tick(label_sensor, instance, second.cursor, resources)
    (request,) = third.run_requests
    assert request.partition_key == "2025-02-03" and request.tags["ct/trigger"] == "labels"
    assert f"{threshold + 1} new labels" in request.tags["ct/reason"]
    report(instance, "labels", "2025-02-04", rows_valid=10)
    assert "10 new labels" in tick(label_sensor, instance, third.cursor, resources).skip_reason.skip_message


def test_freshness_sensor_bootstraps_then_waits_until_the_model_is_stale(instance, resources):
    drift(instance, "2025-02-01", "none")
    first = tick(freshness_sensor, instance, resources=resources)
    (request,) = first.run_requests
    assert request.tags["ct/trigger"] == "freshness" and "bootstrap" in request.tags["ct/reason"]
    max_age = resources["settings"].policy().staleness.max_age_days
    promoted(instance, "m-1", "2025-02-01")
    drift(instance, "2025-02-02", "none")
    fresh = tick(freshness_sensor, instance, first.cursor, resources)
    assert fresh.run_requests == [] and "fresh" in fresh.skip_reason.skip_message
    stale_day = (datetime(2025, 2, 1) + timedelta(days=int(max_age) + 1)).strftime("%Y-%m-%d")
    drift(instance, stale_day, "none")
    (stale,) = tick(freshness_sensor, instance, fresh.cursor, resources).run_requests
    assert stale.partition_key == stale_day and "data ends" in stale.tags["ct/reason"]


def test_freshness_sensor_follows_the_freshness_policy_state(instance, resources):
    promoted(instance, "m-1", "2025-02-01")
    # The freshness daemon records this event when production_model's FreshnessPolicy fails.
    instance._report_runless_asset_event(FreshnessStateChange(
        key=dg.AssetKey("production_model"), previous_state=FreshnessState.PASS,
        new_state=FreshnessState.FAIL, state_change_timestamp=datetime.now(UTC).timestamp()))
    drift(instance, "2025-02-02", "none")
    (request,) = tick(freshness_sensor, instance, resources=resources).run_requests
    assert "freshness policy is FAIL" in request.tags["ct/reason"]


def test_daily_policy_schedule_decides_the_newest_day_once(instance):
    repository = build_definitions().get_repository_def()
    context = dg.build_schedule_context(instance=instance, repository_def=repository)
    assert daily_policy_schedule.evaluate_tick(context).run_requests == []
    instance.add_dynamic_partitions("days", ["2025-02-01", "2025-02-02"])
    (request,) = daily_policy_schedule.evaluate_tick(context).run_requests
    assert request.partition_key == "2025-02-02" and request.tags["ct/trigger"] == "schedule"
    decision_run_for(instance, "2025-02-02")
    assert daily_policy_schedule.evaluate_tick(context).run_requests == []


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
    assert request.tags[TRAINING_RUN_TAG] == "true" and request.tags["ct/trigger"] == "schedule"

    @dg.job
    def training_placeholder():
        pass

    instance.create_run_for_job(training_placeholder, tags={TRAINING_RUN_TAG: "true"})
    assert periodic_retrain_schedule.evaluate_tick(context).run_requests == []
