"""`doctor`: each invariant check catches the broken state it is for, built directly in a real world."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from ct_assets import cli
from ct_assets.core.data import schema
from ct_assets.core.data.ingest import ingest_complaints, ingest_events, ingest_labels
from ct_assets.core.data.layout import SNAPSHOT_NAME, DataLayout
from ct_assets.core.decision.policy import Evidence, decide
from ct_assets.core.decision.policy_config import load_policy_config
from ct_assets.core.decision.records import record_decision, set_decision_outcome
from ct_assets.core.ops.doctor import (
    check_invariants,
    find_temp_leftovers,
    remove_temp_leftovers,
)
from ct_assets.core.ops.snapshots import publish_snapshot
from ct_assets.core.release.deployment import promote
from ct_assets.core.release.gates import GateResult
from ct_assets.core.release.registry import (
    ModelRecord,
    ensure_registry_tables,
    record_gate_results,
    register_candidate,
)
from ct_assets.core.release.rollout import RolloutPlan, start_rollout
from ct_assets.core.release.rollout_store import ensure_rollout_tables
from ct_assets.core.training.artifacts import WEIGHTS_FILE, save_model
from ct_assets.core.training.model import TrainedModel
from ct_assets_tests.builders import events_frame, labels_frame, write_parquet

DAY0, DAY1 = "2025-01-01", "2025-01-02"
SNAPSHOT_TABLES = ("raw_events", "labels", "complaints", "model_registry", "deployments", "decisions")
EVIDENCE = Evidence(
    drift_scope="global", drift_severity_score=0.7, drift_severity_level="high", affected_segments=(),
    drifted_features=("sensor_signal",), unseen_category_share=0.0, concept_drift_detected=True, metric_drop=0.1,
    covariate_drift_small=False, complaint_alert=False, complaint_rate_ratio=1.0, new_labels_since_training=9_000,
    label_coverage_recent=0.8, labelled_rows_new_regime=9_000, production_model_age_days=3.0,
    fine_tunes_since_full_retrain=0, compute_budget_left=3_000.0, risk_tier="low", production_model_exists=True, typical_batch_rows=2_000,
)


@dataclass
class World:
    data_dir: Path
    database: Path
    con: duckdb.DuckDBPyConnection
    first: str  # retired
    serving: str  # production
    decision_id: str

    @property
    def layout(self) -> DataLayout:
        return DataLayout.from_root(self.data_dir)

    def check(self) -> list[str]:
        return check_invariants(self.con, self.data_dir).codes

    def republish(self) -> None:
        publish_snapshot(self.con, self.layout.snapshots_dir, SNAPSHOT_TABLES)


def register(con: duckdb.DuckDBPyConnection, data_dir: Path, model: TrainedModel, **fields: object) -> str:
    stored = save_model(DataLayout.from_root(data_dir).models_dir, model, {})
    register_candidate(con, ModelRecord(model_id=stored.model_id, training_path="retrain",
                                        artifact_path=str(stored.path), weights_sha256=stored.weights_sha256,
                                        **fields))
    return stored.model_id


@pytest.fixture
def world(tmp_path: Path, two_models: tuple[TrainedModel, TrainedModel]) -> Iterator[World]:
    """Two ingested days, a decision, two models (the second serving) and a published snapshot: all clean."""
    layout = DataLayout.from_root(tmp_path / "data")
    data_dir, landing, quarantine = layout.root, layout.landing_dir, layout.quarantine_dir
    write_parquet(events_frame(DAY0, 20, first_id=1), landing / DAY0 / schema.EVENTS_FILE)
    write_parquet(labels_frame([1, 2, 3], [0, 1, 0], DAY1), landing / DAY1 / schema.LABELS_FILE)
    write_parquet(pd.DataFrame({"day": [pd.Timestamp(DAY1)], "orders": [5], "complaints": [0]}),
                  landing / DAY1 / schema.COMPLAINTS_FILE)
    database = layout.warehouse_path
    with duckdb.connect(str(database)) as con:
        ingest_events(con, landing, quarantine, DAY0)
        ingest_labels(con, landing, quarantine, DAY1)
        ingest_complaints(con, landing, quarantine, DAY1)
        decision = record_decision(con, DAY1, decide(EVIDENCE, load_policy_config()), EVIDENCE)
        ensure_registry_tables(con)
        first = register(con, data_dir, two_models[0])
        serving = register(con, data_dir, two_models[1], parent_model_id=first, decision_id=decision.decision_id)
        set_decision_outcome(con, decision.decision_id, f"retrain: candidate {serving}")
        promote(con, first, actor="test", reason="first model")
        promote(con, serving, actor="test", reason="better")
        world = World(data_dir, database, con, first, serving, decision.decision_id)
        world.republish()
        yield world


def test_a_consistent_world_is_clean(world: World) -> None:
    report = check_invariants(world.con, world.data_dir)
    assert report.problems == () and report.ok
    assert report.render().startswith("ct doctor: clean after 8 checks")


HOLD_WRITER = """
import sys, time, duckdb
con = duckdb.connect(sys.argv[1])
print("holding", flush=True)
time.sleep(120)
"""


def test_the_live_database_is_opened_read_only(world: World) -> None:
    world.con.close()
    with duckdb.connect(str(world.database), read_only=True) as holder:  # other readers are fine
        assert check_invariants(world.database, world.data_dir).problems == ()
        assert holder.execute("SELECT count(*) FROM model_registry").fetchall() == [(2,)]
    writer = subprocess.Popen([sys.executable, "-c", HOLD_WRITER, str(world.database)], stdout=subprocess.PIPE,
                              text=True)
    try:
        assert writer.stdout.readline().strip() == "holding"
        with pytest.raises(duckdb.IOException, match="lock"):  # a running writer: said, not waited for
            check_invariants(world.database, world.data_dir)
    finally:
        writer.kill()
        writer.wait()
    assert check_invariants(world.database, world.data_dir).problems == ()


def test_two_production_models(world: World) -> None:
    world.con.execute("UPDATE model_registry SET status = 'production'")
    assert "multiple_production" in world.check()


def test_production_pointer_that_disagrees_with_the_deployments_log(world: World) -> None:
    world.con.execute("UPDATE model_registry SET status = CASE WHEN model_id = ? THEN 'production' ELSE 'retired' END",
                      [world.first])
    assert world.check() == ["production_pointer_mismatch"]


def test_deployment_that_does_not_start_where_the_last_one_ended(world: World) -> None:
    world.con.execute("UPDATE deployments SET previous_model_id = NULL WHERE deployment_id = 2")
    assert world.check() == ["deployment_chain_broken"]


def test_missing_and_tampered_artifacts(world: World) -> None:
    weights = world.layout.models_dir / world.first / WEIGHTS_FILE
    blob = bytearray(weights.read_bytes())
    blob[len(blob) // 2] ^= 0xFF
    weights.write_bytes(bytes(blob))
    (world.layout.models_dir / world.serving / WEIGHTS_FILE).unlink()
    assert world.check() == ["artifact_invalid", "artifact_invalid", "snapshot_serving_artifact_invalid"]


def test_registry_hash_that_disagrees_with_the_manifest(world: World) -> None:
    world.con.execute("UPDATE model_registry SET weights_sha256 = ? WHERE model_id = ?", ["ab" * 32, world.first])
    assert world.check() == ["registry_hash_mismatch"]


def test_stored_but_unregistered_model_is_a_warning(world: World, two_models) -> None:
    world.con.execute("DELETE FROM model_registry WHERE model_id = ?", [world.first])
    report = check_invariants(world.con, world.data_dir)
    assert "orphan_artifact" in [p.code for p in report.warnings]
    assert {"unknown_parent", "deployment_unknown_model", "snapshot_unknown_model"} <= {p.code for p in report.errors}


def test_temp_leftovers_are_reported_and_only_old_enough_ones_removed(world: World) -> None:
    models, snapshots = world.layout.models_dir, world.layout.snapshots_dir
    model_temp = models / f".tmp-{world.first}-{'0' * 32}"
    model_temp.mkdir()
    (model_temp / WEIGHTS_FILE).write_bytes(b"half a model")
    snapshot_temp = snapshots / f".{SNAPSHOT_NAME}.4242.tmp"
    snapshot_temp.write_bytes(b"half a snapshot")
    unrelated = models / ".keep-me"
    unrelated.write_text("not a writer's temp name")
    assert world.check() == ["temp_leftover", "temp_leftover"]
    assert remove_temp_leftovers(world.data_dir, min_age_seconds=3600) == []  # young: a writer may own them
    old = time.time() - 7200
    os.utime(model_temp, (old, old))
    assert remove_temp_leftovers(world.data_dir, min_age_seconds=3600) == [model_temp]
    assert find_temp_leftovers(world.data_dir) == [snapshot_temp]
    assert remove_temp_leftovers(world.data_dir, min_age_seconds=0) == [snapshot_temp]
    assert world.check() == [] and unrelated.exists()
    assert sorted(p.name for p in models.iterdir()) == sorted([".keep-me", world.first, world.serving])


def test_duplicate_rows_in_the_warehouse(world: World) -> None:
    world.con.execute("INSERT INTO raw_events SELECT * FROM raw_events WHERE event_id = 1")
    world.con.execute("INSERT INTO labels SELECT * FROM labels WHERE event_id = 2")
    world.con.execute("INSERT INTO complaints SELECT * FROM complaints")
    assert world.check() == ["duplicate_complaint_days", "duplicate_event_ids", "duplicate_labels"]


def test_snapshot_that_disagrees_with_itself(world: World) -> None:
    path = world.layout.snapshot_path
    world.con.execute("ATTACH ? AS snap", [str(path)])
    world.con.execute("DELETE FROM snap.raw_events WHERE event_id = 1")
    world.con.execute("DETACH snap")
    assert world.check() == ["snapshot_inconsistent"]


def test_half_written_snapshot_is_unreadable(world: World) -> None:
    path = world.layout.snapshot_path
    path.write_bytes(path.read_bytes()[:4096])
    assert world.check() == ["snapshot_unreadable"]


def test_snapshot_serving_a_model_that_was_never_deployed(world: World) -> None:
    # The pointer was set by hand, not by promote/rollback, and a snapshot published it to the stream.
    world.con.execute("DELETE FROM deployments")
    world.republish()
    assert world.check() == ["impossible_status", "production_pointer_mismatch", "snapshot_production_never_deployed"]


def test_decision_naming_an_unregistered_model(world: World) -> None:
    set_decision_outcome(world.con, world.decision_id, "retrain: candidate m-0123456789ab")
    assert world.check() == ["decision_unknown_model"]


def test_model_naming_an_unrecorded_decision_is_a_warning(world: World) -> None:
    world.con.execute("UPDATE model_registry SET decision_id = 'dec-2025-01-02-000000000000' WHERE model_id = ?",
                      [world.serving])
    report = check_invariants(world.con, world.data_dir)
    assert report.ok and [p.code for p in report.warnings] == ["model_unknown_decision"]


def test_impossible_statuses(world: World, two_models) -> None:
    # A model retired or rejected without the deployment that would have done it.
    world.con.execute("UPDATE model_registry SET status = 'rejected' WHERE model_id = ?", [world.first])
    assert world.check() == []  # it served before: a rollback could have rejected it
    world.con.execute("DELETE FROM deployments WHERE deployment_id = 1")
    world.con.execute("UPDATE deployments SET previous_model_id = NULL")
    assert world.check() == ["impossible_status"]
    world.con.execute("UPDATE model_registry SET status = 'retired' WHERE model_id = ?", [world.first])
    assert world.check() == ["impossible_status"]


def test_candidate_left_staged_with_a_failed_gate(world: World, two_models) -> None:
    nudged = replace(two_models[0], weights={k: v + 0.5 for k, v in two_models[0].weights.items()})
    candidate = register(world.con, world.data_dir, nudged)
    record_gate_results(world.con, candidate, [GateResult("holdout", False, "error", reason="worse than production"),
                                               GateResult("calibration", False, "warning")])
    report = check_invariants(world.con, world.data_dir)
    assert report.codes == ["failed_gates_not_rejected"]
    assert f"ct reject {candidate}" in report.errors[0].message and "['holdout']" in report.errors[0].message


def test_rollouts_naming_unknown_models_and_two_active(world: World) -> None:
    ensure_rollout_tables(world.con)
    start_rollout(world.con, world.serving, world.first, RolloutPlan(), day=DAY1)
    assert world.check() == []
    world.con.execute("INSERT INTO rollouts SELECT 'r-copy', 'm-999999999999', previous_model_id, steps, days_per_step, "
                      "start_day, status, step_index, traffic_share, step_started_day, reason, created_at FROM rollouts")
    assert world.check() == ["multiple_active_rollouts", "rollout_unknown_model"]


def test_ignored_landing_entries_are_warnings(world: World) -> None:
    (world.layout.landing_dir / "2026-02-30").mkdir()
    report = check_invariants(world.con, world.data_dir)
    assert report.ok and report.codes == ["landing_ignored"]
    assert "2026-02-30" in report.render()


def test_an_empty_data_dir_is_clean(tmp_path: Path) -> None:
    warehouse = DataLayout.from_root(tmp_path).warehouse_path
    assert check_invariants(warehouse, tmp_path).problems == ()
    assert not warehouse.exists()


def test_ct_doctor_exit_codes_and_repair(world: World, capsys) -> None:
    world.con.close()
    data_dir = str(world.data_dir)
    assert cli.main(["doctor", "--data-dir", data_dir]) == 0
    assert "ct doctor: clean" in capsys.readouterr().out
    leftover = world.layout.snapshots_dir / f".{SNAPSHOT_NAME}.999999.tmp"
    leftover.write_bytes(b"interrupted publish")
    assert cli.main(["doctor", "--data-dir", data_dir]) == 1
    out = capsys.readouterr().out
    assert "1 error(s)" in out and f"ERROR   temp_leftover: {leftover}" in out
    assert cli.main(["doctor", "--data-dir", data_dir, "--repair"]) == 1  # too young to remove by default
    assert leftover.exists()
    assert cli.main(["doctor", "--data-dir", data_dir, "--repair", "--min-age-seconds", "0"]) == 0
    assert f"removed {leftover}" in capsys.readouterr().out and not leftover.exists()
    with duckdb.connect(str(world.database)) as con:
        con.execute("UPDATE model_registry SET status = 'production'")
    assert cli.main(["doctor", "--data-dir", data_dir]) == 1
    assert "multiple_production: 2 models are in production" in capsys.readouterr().out
