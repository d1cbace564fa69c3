"""One test per cursor case of the decision and rollback sensors, on a real instance's event log."""

import dagster as dg

from ct_assets.defs.release.rollback_sensor import rollback_sensor
from ct_assets.defs.tags import (
    ACTION_TAG,
    REASON_TAG,
    ROLLBACK_MODEL_TAG,
    TRAINING_RUN_TAG,
    TRIGGER_TAG,
    WINDOW_END_TAG,
)
from ct_assets.defs.training.path_sensor import decision_sensor


def decide(instance, day, action, decision_id, rules=("drift_scope",)):
    instance.report_runless_asset_event(dg.AssetMaterialization(
        asset_key="training_decision", partition=day,
        metadata={"decision_id": decision_id, "action": action, "requires_approval": False,
                  "fired_rules": list(rules)}))


def tick(sensor, instance, cursor=None):
    return sensor(dg.build_sensor_context(instance=instance, cursor=cursor))


def selected(request):
    return [key.to_user_string() for key in request.asset_selection]


def test_no_decisions_yet(instance):
    result = tick(decision_sensor, instance)
    assert result.run_requests == [] and result.cursor is None


def test_none_decision_advances_the_cursor_without_a_run(instance):
    decide(instance, "2025-01-05", "none", "dec-1", rules=())
    result = tick(decision_sensor, instance)
    assert result.run_requests == [] and result.cursor is not None
    assert tick(decision_sensor, instance, result.cursor).cursor == result.cursor


def test_retrain_decision_requests_the_retrain_path_once(instance):
    decide(instance, "2025-01-05", "retrain", "dec-2", rules=("bootstrap", "labels_plentiful"))
    result = tick(decision_sensor, instance)
    (request,) = result.run_requests
    assert selected(request) == ["retrained_candidate", "production_model"]
    assert request.run_key == "dec-2"
    assert request.tags[TRIGGER_TAG] == "bootstrap" and request.tags[WINDOW_END_TAG] == "2025-01-05"
    assert request.tags[TRAINING_RUN_TAG] == "true"
    assert tick(decision_sensor, instance, result.cursor).run_requests == []


def test_newest_of_several_decisions_wins(instance):
    decide(instance, "2025-01-06", "fine_tune", "dec-3")
    decide(instance, "2025-01-07", "retrain", "dec-4")
    (request,) = tick(decision_sensor, instance).run_requests
    assert (request.run_key, selected(request)[0]) == ("dec-4", "retrained_candidate")


def test_no_second_training_run_while_one_is_in_flight(instance):
    @dg.job
    def training_placeholder():
        pass

    run = instance.create_run_for_job(training_placeholder, tags={TRAINING_RUN_TAG: "true"})
    assert run.status == dg.DagsterRunStatus.NOT_STARTED
    decide(instance, "2025-01-08", "fine_tune", "dec-5")
    result = tick(decision_sensor, instance)
    assert result.run_requests == [] and "still in flight" in result.skip_reason.skip_message
    assert result.cursor is not None


def test_rollback_sensor_acts_only_on_rollback_verdicts(instance):
    for day, verdict in (("2025-01-09", "advance"), ("2025-01-10", "rollback")):
        instance.report_runless_asset_event(dg.AssetMaterialization(
            asset_key="rollout_monitor", partition=day,
            metadata={"verdict": verdict, "rollout_id": "ro-1", "reason": f"{verdict}: live AUC",
                      "model_id": "m-000000000002"}))
    result = tick(rollback_sensor, instance)
    (request,) = result.run_requests
    assert selected(request) == ["production_model"]
    assert (request.run_key, request.tags[ACTION_TAG]) == ("rollback:ro-1", "rollback")
    assert request.tags[ROLLBACK_MODEL_TAG] == "m-000000000002"
    assert tick(rollback_sensor, instance, result.cursor).run_requests == []


def test_a_stale_rollback_verdict_never_rolls_back_a_newer_model(instance, resources, data_dir):
    import duckdb

    from ct_assets.core.release.deployment import promote
    from ct_assets.core.release.registry import (
        ModelRecord,
        ensure_registry_tables,
        get_production,
        register_candidate,
    )
    from ct_assets.defs.release.production import production_model

    with duckdb.connect(str(data_dir / "warehouse.duckdb")) as con:
        ensure_registry_tables(con)
        for model_id in ("m-00000000000a", "m-00000000000b", "m-00000000000c"):
            register_candidate(con, ModelRecord(model_id=model_id, training_path="retrain"))
            promote(con, model_id, actor="test", reason="next")
    # The verdict judged m-...b, but m-...c was promoted since: nothing may be rolled back.
    stale = {ACTION_TAG: "rollback", REASON_TAG: "b degraded", ROLLBACK_MODEL_TAG: "m-00000000000b"}
    assert dg.materialize([production_model], instance=instance, resources=resources, tags=stale).success
    meta = instance.get_latest_materialization_event(production_model.key).asset_materialization.metadata
    assert meta["outcome"].value == "kept" and "stale rollback verdict" in meta["reason"].value
    current = {**stale, ROLLBACK_MODEL_TAG: "m-00000000000c"}
    assert dg.materialize([production_model], instance=instance, resources=resources, tags=current).success
    with duckdb.connect(str(data_dir / "warehouse.duckdb"), read_only=True) as con:
        assert get_production(con).model_id == "m-00000000000b"
