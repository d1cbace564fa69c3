"""The code location: loads, validates with Dagster's own command, explains itself, imports light."""

import os
import subprocess
import sys
from pathlib import Path

import dagster as dg

from ct_assets.defs.build import build_definitions

ROOT = Path(__file__).resolve().parent.parent


def test_every_asset_has_group_kinds_owners_and_description():
    graph = build_definitions().resolve_asset_graph()
    assert len(graph.get_all_asset_keys()) == 18  # policy_calibration included
    for key in graph.get_all_asset_keys():
        spec = graph.get(key)
        assert spec.group_name and spec.group_name != "default", key
        assert spec.owners, key
        assert spec.description and len(spec.description) > 40, key
        assert spec.kinds, key


def test_lineage_from_raw_data_to_production_model():
    graph = build_definitions().resolve_asset_graph()
    upstream = {key.to_user_string(): {p.to_user_string() for p in graph.get(key).parent_keys}
                for key in graph.get_all_asset_keys()}
    assert "raw_events" in upstream["features"]
    assert "features" in upstream["drift_report"]
    assert {"drift_report", "concept_drift", "complaint_report"} <= upstream["training_decision"]
    assert "training_decision" in upstream["retrained_candidate"]
    assert "training_decision" in upstream["finetuned_candidate"]
    assert {"retrained_candidate", "finetuned_candidate"} == upstream["production_model"]
    assert {"features", "labels", "production_model"} == upstream["online_model"]
    assert {"backtest_result"} == upstream["backtest_tables"]


def test_sensors_run_without_a_click_and_the_cron_baseline_is_opt_in():
    defs = build_definitions()
    sensors = {s.name: s.default_status for s in defs.sensors}
    assert sensors == {name: dg.DefaultSensorStatus.RUNNING
                       for name in ("landing_sensor", "drift_sensor", "performance_sensor", "label_sensor",
                                    "freshness_sensor", "decision_request_sensor", "decision_sensor",
                                    "rollback_sensor", "ct_automation")}
    assert {s.name: s.default_status for s in defs.schedules} == {
        "daily_policy_schedule": dg.DefaultScheduleStatus.RUNNING,
        "periodic_retrain": dg.DefaultScheduleStatus.STOPPED}


def test_only_triggers_and_the_schedule_ask_for_a_decision():
    defs = build_definitions()
    graph = defs.resolve_asset_graph()
    assert graph.get(dg.AssetKey("training_decision")).automation_condition is None
    # One instigator requests decision runs (run keys dedupe only within one): the triggers only ask.
    decision = dg.AssetKey("training_decision")
    requesters = {s.name for s in defs.sensors
                  if any(decision in assets.keys for target in s.targets for assets in target.assets_defs)}
    assert requesters == {"decision_request_sensor"}
    assert graph.get(dg.AssetKey("online_model")).automation_condition is None


def test_dagster_definitions_validate_passes(tmp_path):
    env = {**os.environ, "CT_DATA_DIR": str(tmp_path), "CT_DUCKDB_PATH": str(tmp_path / "w.duckdb"),
           "DAGSTER_HOME": str(tmp_path)}
    result = subprocess.run([str(Path(sys.executable).with_name("dagster")), "definitions", "validate",
                             "-m", "ct_assets.definitions"], cwd=ROOT, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_code_location_import_loads_no_heavy_library():
    code = ("import sys, ct_assets.definitions; "
            "print(sorted(m for m in ('torch', 'alibi_detect', 'sklearn', 'scipy', 'matplotlib', 'fairlearn', "
            "'pandera', 'codecarbon', 'pandas', 'pyarrow') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def test_the_webhook_secret_is_bound_as_an_env_var_never_a_literal(monkeypatch):
    from ct_assets.defs.resources import default_resources

    monkeypatch.delenv("CT_NOTIFIER_TARGET", raising=False)
    assert default_resources()["settings"].notifier_target == ""
    monkeypatch.setenv("CT_NOTIFIER_TARGET", "https://hooks.example.com/T0KEN")
    monkeypatch.setenv("CT_NOTIFIER_KIND", "webhook")
    settings = default_resources()["settings"]
    assert isinstance(settings.notifier_target, dg.EnvVar) and settings.notifier_target == "CT_NOTIFIER_TARGET"
    assert settings.notifier_kind == "webhook"
