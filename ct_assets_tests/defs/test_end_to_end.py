import json
import re
from pathlib import Path

import dagster as dg
import duckdb

from ct_assets.core.data.layout import DataLayout
from ct_assets.defs.build import build_definitions
from ct_assets.defs.tags import DECISION_TAG, TRIGGER_TAG
from ct_assets.simulation.config import SimulatorConfig
from ct_assets.simulation.scenarios import parse_timeline
from ct_assets_tests.defs.pipeline import Pipeline, query

ROOT = Path(__file__).resolve().parents[2]


def test_bootstrap_local_fine_tune_then_global_retrain(instance, resources, data_dir):
    """Landing files to a promoted model; a regional promotion fine-tunes, new sensor hardware retrains."""
    timeline = parse_timeline("stable@0,regional_promotion@7,sensor_hardware_change@10")
    pipeline = Pipeline(instance, resources, data_dir, SimulatorConfig(rows_per_day=1500, seed=3, timeline=timeline))

    pipeline.land(5)
    assert pipeline.ingest_landed() == ["2025-01-01", "2025-01-02", "2025-01-03", "2025-01-04", "2025-01-05"]
    (bootstrap,) = pipeline.decisions()
    assert bootstrap.tags[TRIGGER_TAG] == "bootstrap"
    assert [k.to_user_string() for k in bootstrap.asset_selection] == ["retrained_candidate", "production_model"]
    assert pipeline.run(bootstrap).success
    assert query(data_dir, "SELECT status, training_path, trigger FROM model_registry") == \
        [("production", "retrain", "bootstrap")]

    # Stable days: no trigger fires, so no decision is taken and nothing is trained ...
    assert pipeline.step(2) == []
    assert query(data_dir, "SELECT count(*) FROM decisions WHERE day > '2025-01-05'") == [(0,)]
    # ... until the daily policy schedule weighs the evidence anyway and records "none".
    assert pipeline.scheduled_decision().tags[TRIGGER_TAG] == "schedule"
    assert query(data_dir, "SELECT action FROM decisions WHERE day = '2025-01-07'") == [("none",)]
    assert pipeline.decisions() == []

    # Regional promotion from day 7 (2025-01-08): local drift. Its first day has no labels of the new
    # regime yet, so the policy waits; the next day it fine-tunes the production model.
    assert pipeline.step(1) == []
    fired, = query(data_dir, "SELECT fired_rules FROM decisions WHERE day = '2025-01-08'")[0]
    assert json.loads(fired) == ["drift_scope", "labels_scarce"]
    requests = pipeline.step(1)
    assert [r.tags[TRIGGER_TAG] for r in requests] == ["drift_scope"]
    assert [k.to_user_string() for k in requests[0].asset_selection] == ["finetuned_candidate", "production_model"]
    action, reasons = query(data_dir, "SELECT action, reasons FROM decisions WHERE day = '2025-01-09'")[0]
    assert action == "fine_tune" and "drift is local (segments: region=south; features: discount)" in reasons
    path, has_parent, decision_id = query(data_dir, "SELECT training_path, parent_model_id IS NOT NULL, decision_id "
                                                    "FROM model_registry ORDER BY created_at DESC LIMIT 1")[0]
    assert (path, has_parent, decision_id) == ("fine_tune", True, requests[0].tags[DECISION_TAG])
    # The fine-tune is judged on the newest regime's holdout rows (since the shift started), not on its
    # window's old-regime rows; the long-term holdout guards the whole history.
    gates = {g["name"]: g for g in json.loads(query(data_dir, "SELECT gate_results FROM model_registry "
                                                              "ORDER BY created_at DESC LIMIT 1")[0][0])}
    assert "(since the shift started at 2025-01-08)" in gates["holdout"]["reason"]
    assert gates["holdout"]["passed"] and "long_term_holdout" in gates

    # New sensor hardware from day 10 (2025-01-11): global drift -> retrain from scratch.
    pipeline.step(1)
    requests = pipeline.step(1)
    assert [k.to_user_string() for k in requests[0].asset_selection] == ["retrained_candidate", "production_model"]
    action, reasons = query(data_dir, "SELECT action, reasons FROM decisions WHERE day = '2025-01-11'")[0]
    assert action == "retrain" and "drift is global" in reasons
    assert query(data_dir, "SELECT count(*) FROM model_registry WHERE training_path = 'retrain' "
                           "AND trigger = 'drift_scope'") == [(1,)]
    # Every model has gate results, each rejection its reason, and exactly one model serves.
    assert query(data_dir, "SELECT count(*) FROM model_registry WHERE status = 'production'") == [(1,)]
    assert query(data_dir, "SELECT count(*) FROM model_registry WHERE gate_results = '[]'") == [(0,)]
    assert query(data_dir, "SELECT count(*) FROM model_registry WHERE status = 'rejected' "
                           "AND status_reason IS NULL") == [(0,)]
    # The sensor does not ask twice for decisions it already handled.
    assert pipeline.decisions() == []

    # Analysts: the snapshot asset publishes every table, and every query in the README runs on it.
    snapshot_asset = build_definitions(resources).get_assets_def("analyst_snapshot")
    assert dg.materialize([snapshot_asset], instance=instance, resources=resources).success
    snapshot = DataLayout.from_root(data_dir).snapshot_path
    queries = re.findall(r"```sql\n(.*?)```", (ROOT / "README.md").read_text(), flags=re.S)
    assert len(queries) >= 1
    with duckdb.connect(str(snapshot), read_only=True) as con:
        for block in queries:
            for statement in filter(str.strip, block.split(";")):
                assert con.execute(statement).fetchall() is not None
        tables = dict(con.execute("SELECT table_name, row_count FROM snapshot_info").fetchall())
    assert tables["raw_events"] == 11 * 1500 and tables["model_registry"] >= 3
    # Decisions only on days a trigger or the schedule asked: bootstrap, the scheduled quiet day, drift.
    assert [d for (d,) in query(data_dir, "SELECT strftime(day, '%m-%d') FROM decisions ORDER BY day")] == \
        ["01-05", "01-07", "01-08", "01-09", "01-10", "01-11"] and tables["decisions"] == 6
