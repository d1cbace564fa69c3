import duckdb

from ct_assets.core.simulator import SimulatorConfig, parse_timeline
from ct_assets_tests.defs.pipeline import Pipeline


def registry(data_dir):
    with duckdb.connect(str(data_dir / "warehouse.duckdb"), read_only=True) as con:
        return con.execute("SELECT model_id, status, trigger, trigger_reason, gate_results FROM model_registry "
                           "ORDER BY created_at").fetchall()


def test_landing_to_promoted_model_then_drift_triggered_candidate(instance, resources, data_dir):
    config = SimulatorConfig(rows_per_day=1500, seed=3, timeline=parse_timeline("stable@0,sensor_hardware_change@6"))
    pipeline = Pipeline(instance, resources, data_dir, config)
    pipeline.land(5)
    assert pipeline.ingest_landed() == ["2025-01-01", "2025-01-02", "2025-01-03", "2025-01-04", "2025-01-05"]

    (bootstrap,) = pipeline.evaluate_trigger().run_requests
    assert bootstrap.tags["ct/trigger"] == "bootstrap"
    result = pipeline.run_training(bootstrap.tags)
    assert result.success
    [(first_id, status, trigger, _, _)] = registry(data_dir)
    assert (status, trigger) == ("production", "bootstrap")

    # Stable days: no drift breach, no new candidate.
    pipeline.land(1)
    pipeline.ingest_landed()
    assert pipeline.evaluate_trigger().run_requests == []

    # New sensor hardware from day 6: the drift report breaches and a candidate is requested.
    pipeline.land(2)
    pipeline.ingest_landed()
    requests = pipeline.evaluate_trigger().run_requests
    assert [r.tags["ct/trigger"] for r in requests] == ["drift"]
    assert requests[0].run_key.startswith("drift:2025-01-0")
    assert "global scope" in requests[0].tags["ct/reason"]
    pipeline.run_training(requests[0].tags)
    rows = registry(data_dir)
    assert len(rows) == 2
    candidate = rows[1]
    assert candidate[2] == "drift" and candidate[1] in ("production", "rejected")
    assert '"name": "holdout"' in candidate[4]
    # Re-evaluating the sensor does not ask again for the same reports.
    assert pipeline.evaluate_trigger().run_requests == []
