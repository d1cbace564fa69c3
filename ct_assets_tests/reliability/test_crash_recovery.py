"""SIGKILL in the middle of every writing operation, then restart: doctor is clean, nothing is half-done.

Each test copies a small deployed world (4 ingested days, features, a production model, a staged
candidate, a published snapshot), runs one real core operation in a subprocess with
``CT_FAULT_PAUSE_AT`` set, waits for the pause marker, SIGKILLs the process there, and then checks
in this process: ``doctor`` reports clean (or exactly the temporary leftover, which repair removes),
the production pointer and the registry agree, the serving model loads hash-verified, and re-running
the operation is idempotent.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import replace
from datetime import date
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest

from ct_assets.core.data import schema
from ct_assets.core.data.features import build_features
from ct_assets.core.data.ingest import ingest_complaints, ingest_events, ingest_labels
from ct_assets.core.data.layout import SNAPSHOT_NAME, DataLayout
from ct_assets.core.decision.policy import Evidence, decide
from ct_assets.core.decision.policy_config import load_policy_config
from ct_assets.core.decision.records import list_decisions, record_decision
from ct_assets.core.ops import faults
from ct_assets.core.ops.doctor import (
    check_invariants,
    find_temp_leftovers,
    remove_temp_leftovers,
)
from ct_assets.core.ops.snapshots import publish_snapshot
from ct_assets.core.release.deployment import promote
from ct_assets.core.release.registry import (
    get_production,
    list_deployments,
    list_models,
)
from ct_assets.core.training.artifacts import load_model, save_model, weights_sha256
from ct_assets.core.training.candidates import CandidateRequest, build_candidate
from ct_assets.core.training.model import TrainingConfig
from ct_assets_tests.builders import events_frame, labels_frame, write_parquet

REPO = Path(__file__).resolve().parents[2]
DAYS = ("2025-01-01", "2025-01-02", "2025-01-03", "2025-01-04")
ROWS_PER_DAY = 400
TABLES = ("raw_events", "labels", "complaints", "features", "quarantine", "file_issues", "ingest_log",
          "model_registry", "deployments", "decisions")
TRAINING = TrainingConfig(hidden_sizes=(8,), epochs=2, fine_tune_max_steps=20, device="cpu")
EVIDENCE_FIELDS: dict[str, object] = {
    "drift_scope": "local", "drift_severity_score": 0.45, "drift_severity_level": "medium",
    "affected_segments": ("region=south",), "drifted_features": ("discount",), "unseen_category_share": 0.0,
    "concept_drift_detected": False, "metric_drop": 0.0, "covariate_drift_small": False, "complaint_alert": False,
    "complaint_rate_ratio": 1.0, "new_labels_since_training": 3_000, "label_coverage_recent": 0.7,
    "labelled_rows_new_regime": 3_000, "production_model_age_days": 12.0, "fine_tunes_since_full_retrain": 0,
    "compute_budget_left": 3_000.0, "risk_tier": "low", "production_model_exists": True, "typical_batch_rows": 2_000,
}
EVIDENCE = Evidence(**EVIDENCE_FIELDS)

# The operation each pause point interrupts, as a script: argv[1] is the data directory.
PRELUDE = "import sys, duckdb\nfrom ct_assets.core.data.layout import DataLayout\n" \
          "data = DataLayout.from_root(sys.argv[1])\ncon = duckdb.connect(str(data.warehouse_path))\n"
OPERATIONS: dict[str, str] = {
    faults.INGEST_BEFORE_COMMIT: PRELUDE + (
        "from ct_assets.core.data.ingest import ingest_events\n"
        "ingest_events(con, data.landing_dir, data.quarantine_dir, sys.argv[2])\n"),
    faults.CANDIDATE_TRAINED: PRELUDE + (
        "from datetime import date\n"
        "from ct_assets.core.training.candidates import CandidateRequest, build_candidate\n"
        "from ct_assets.core.training.model import TrainingConfig\n"
        "request = CandidateRequest('fine_tune', date(2025, 1, 3), 1, 'manual', 'crash test', 50)\n"
        f"build_candidate(con, data.models_dir, request, {TRAINING!r})\n"),
    faults.ARTIFACT_WEIGHTS_WRITTEN: PRELUDE + (
        "from dataclasses import replace\n"
        "from ct_assets.core.training.artifacts import load_model, save_model\n"
        "base = load_model(data.models_dir, sys.argv[2])\n"
        "nudged = replace(base, weights={k: v + 0.001 for k, v in base.weights.items()})\n"
        "save_model(data.models_dir, nudged, {'code_version': 'crash-test'})\n"),
    faults.PROMOTE_INSIDE_SWAP: PRELUDE + (
        "from ct_assets.core.release.deployment import promote\n"
        "promote(con, sys.argv[2], actor='crash-test', reason='interrupted promotion')\n"),
    faults.SNAPSHOT_BEFORE_RENAME: PRELUDE + (
        "from ct_assets.core.ops.snapshots import publish_snapshot\n"
        f"publish_snapshot(con, data.snapshots_dir, {TABLES!r})\n"),
    faults.DECISION_WRITTEN: PRELUDE + (
        "from ct_assets.core.decision.records import record_decision\n"
        "from ct_assets.core.decision.policy import Evidence, decide\n"
        "from ct_assets.core.decision.policy_config import load_policy_config\n"
        f"evidence = Evidence(**{EVIDENCE_FIELDS!r})\n"
        "record_decision(con, sys.argv[2], decide(evidence, load_policy_config()), evidence)\n"),
}


def land_day(landing: Path, index: int, rows: int = ROWS_PER_DAY) -> None:
    day = DAYS[index] if index < len(DAYS) else f"2025-01-{index + 1:02d}"
    first_id = index * 10_000 + 1
    write_parquet(events_frame(day, rows, first_id=first_id, seed=index), landing / day / schema.EVENTS_FILE)
    if index > 0:  # the previous day's orders get their labels today (80% of them)
        rng = np.random.default_rng(index)
        ids = np.arange((index - 1) * 10_000 + 1, (index - 1) * 10_000 + 1 + int(ROWS_PER_DAY * 0.8))
        write_parquet(labels_frame(ids, (rng.random(len(ids)) < 0.3).astype(int), day),
                      landing / day / schema.LABELS_FILE)
    write_parquet(pd.DataFrame({"day": [pd.Timestamp(day)], "orders": [rows], "complaints": [2]}),
                  landing / day / schema.COMPLAINTS_FILE)


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> DataLayout:
    """A deployed world: 4 days ingested with features, model A serving, candidate B staged, a snapshot."""
    data = DataLayout.from_root(tmp_path_factory.mktemp("template") / "data")
    for index in range(len(DAYS)):
        land_day(data.landing_dir, index)
    with duckdb.connect(str(data.warehouse_path)) as con:
        for day in DAYS:
            for ingest in (ingest_events, ingest_labels, ingest_complaints):
                ingest(con, data.landing_dir, data.quarantine_dir, day)
            build_features(con, day)
        first = build_candidate(con, data.models_dir, CandidateRequest("retrain", date(2025, 1, 3), 3, "bootstrap",
                                                                       "first model", 100), TRAINING)
        promote(con, first.model_id, actor="test", reason="first model")
        build_candidate(con, data.models_dir, CandidateRequest("retrain", date(2025, 1, 3), 2, "manual",
                                                               "candidate", 100), TRAINING)
        publish_snapshot(con, data.snapshots_dir, TABLES)
    return data


@pytest.fixture
def data(template: DataLayout, tmp_path: Path) -> DataLayout:
    copy = tmp_path / "data"
    shutil.copytree(template.root, copy)
    return DataLayout.from_root(copy)


def connect(data: DataLayout, read_only: bool = False) -> duckdb.DuckDBPyConnection:
    return duckdb.connect(str(data.warehouse_path), read_only=read_only)


def kill_at(point: str, data: DataLayout, *args: str) -> None:
    """Run OPERATIONS[point] in a subprocess, wait until it pauses at ``point``, SIGKILL it."""
    marker = data.root.parent / "paused.marker"
    env = {**os.environ, faults.PAUSE_AT_ENV: point, faults.MARKER_ENV: str(marker), "PYTHONPATH": str(REPO)}
    process = subprocess.Popen([sys.executable, "-c", OPERATIONS[point], str(data.root), *args], env=env, cwd=REPO,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    try:
        while not marker.exists():
            if process.poll() is not None:
                pytest.fail(f"the operation ended without reaching {point}: {process.communicate()[1][-2000:]}")
            if time.monotonic() > deadline:
                pytest.fail(f"the operation did not reach {point} within 120 s")
            time.sleep(0.05)
    finally:
        if process.poll() is None:
            os.kill(process.pid, signal.SIGKILL)
        process.communicate()
    assert process.returncode == -signal.SIGKILL
    assert marker.read_text().split() == [point, str(process.pid)]


def assert_recovered(data: DataLayout, leftovers: int = 0) -> str:
    """Doctor finds exactly ``leftovers`` temp leftovers (removed by repair) and nothing else; the serving
    model is the one the deployments log says and loads hash-verified. Returns its id."""
    report = check_invariants(data.warehouse_path, data.root)
    assert report.codes == ["temp_leftover"] * leftovers, report.render()
    if leftovers:
        assert len(remove_temp_leftovers(data.root, min_age_seconds=0)) == leftovers
        assert check_invariants(data.warehouse_path, data.root).problems == ()
    with connect(data, read_only=True) as con:
        serving = get_production(con)
        assert serving is not None and serving.model_id == list_deployments(con)[-1].model_id
    load_model(data.models_dir, serving.model_id)  # raises unless complete and hash-verified
    return serving.model_id


def test_every_pause_point_is_exercised() -> None:
    assert set(OPERATIONS) == set(faults.PAUSE_POINTS)


def test_pause_point_is_a_no_op_unless_named(monkeypatch, tmp_path) -> None:
    monkeypatch.delenv(faults.PAUSE_AT_ENV, raising=False)
    faults.pause_point(faults.PROMOTE_INSIDE_SWAP)
    monkeypatch.setenv(faults.PAUSE_AT_ENV, faults.INGEST_BEFORE_COMMIT)
    monkeypatch.setenv(faults.MARKER_ENV, str(tmp_path / "marker"))
    faults.pause_point(faults.PROMOTE_INSIDE_SWAP)  # another point: returns at once
    assert not (tmp_path / "marker").exists()
    monkeypatch.delenv(faults.MARKER_ENV)
    with pytest.raises(ValueError, match=faults.MARKER_ENV):
        faults.pause_point(faults.INGEST_BEFORE_COMMIT)


def test_kill_while_ingesting_keeps_the_old_day_and_reingest_is_idempotent(data: DataLayout) -> None:
    day = DAYS[3]
    land_day(data.landing_dir, 3, rows=ROWS_PER_DAY + 50)  # a corrected re-delivery with more orders
    kill_at(faults.INGEST_BEFORE_COMMIT, data, day)
    assert_recovered(data)
    with connect(data) as con:
        # The transaction had deleted the day and inserted the new rows: none of it survived the kill.
        assert con.execute("SELECT count(*), count(DISTINCT event_id) FROM raw_events WHERE day = ?",
                           [day]).fetchall() == [(ROWS_PER_DAY, ROWS_PER_DAY)]
        assert con.execute("SELECT count(*) FROM ingest_log WHERE day = ? AND source = 'events'",
                           [day]).fetchall() == [(1,)]
        reports = [ingest_events(con, data.landing_dir, data.quarantine_dir, day) for _ in range(2)]
        assert [r.rows_valid for r in reports] == [ROWS_PER_DAY + 50] * 2
        assert con.execute("SELECT count(*), count(DISTINCT event_id) FROM raw_events WHERE day = ?",
                           [day]).fetchall() == [(ROWS_PER_DAY + 50, ROWS_PER_DAY + 50)]
        assert con.execute("SELECT count(*) FROM raw_events").fetchall() == [(4 * ROWS_PER_DAY + 50,)]
    assert_recovered(data)


def test_kill_while_training_leaves_no_candidate_and_rebuilding_registers_it_once(data: DataLayout) -> None:
    with connect(data, read_only=True) as con:
        before = {m.model_id for m in list_models(con)}
    kill_at(faults.CANDIDATE_TRAINED, data)
    assert_recovered(data)
    assert sorted(p.name for p in (data.models_dir).iterdir()) == sorted(before)
    request = CandidateRequest("fine_tune", date(2025, 1, 3), 1, "manual", "crash test", 50)
    with connect(data) as con:
        assert {m.model_id for m in list_models(con)} == before
        first = build_candidate(con, data.models_dir, request, TRAINING)
        again = build_candidate(con, data.models_dir, request, TRAINING)
        assert again.model_id == first.model_id  # deterministic on CPU: the same candidate, not a second one
        assert {m.model_id for m in list_models(con)} == before | {first.model_id}
    assert_recovered(data)


def test_kill_while_writing_an_artifact_leaves_only_a_temp_dir(data: DataLayout) -> None:
    with connect(data, read_only=True) as con:
        serving = get_production(con).model_id
    base = load_model(data.models_dir, serving)
    nudged = replace(base, weights={k: v + 0.001 for k, v in base.weights.items()})
    model_id = "m-" + weights_sha256(nudged.weights)[:12]
    kill_at(faults.ARTIFACT_WEIGHTS_WRITTEN, data, serving)
    assert not (data.models_dir / model_id).exists()  # never visible under its id half-written
    [leftover] = find_temp_leftovers(data.root)
    assert leftover.name.startswith(f".tmp-{model_id}-") and [p.name for p in leftover.iterdir()] == ["model.safetensors"]
    assert assert_recovered(data, leftovers=1) == serving
    stored = save_model(data.models_dir, nudged, {"code_version": "crash-test"})
    assert stored.model_id == model_id and not stored.reused
    load_model(data.models_dir, model_id)
    assert find_temp_leftovers(data.root) == []


def test_kill_inside_the_pointer_swap_leaves_the_old_model_serving(data: DataLayout) -> None:
    with connect(data, read_only=True) as con:
        serving = get_production(con).model_id
        [candidate] = [m.model_id for m in list_models(con, status="staging")]
    kill_at(faults.PROMOTE_INSIDE_SWAP, data, candidate)
    assert assert_recovered(data) == serving
    with connect(data) as con:
        assert [(d.model_id, d.action) for d in list_deployments(con)] == [(serving, "promote")]
        assert con.execute("SELECT status FROM model_registry WHERE model_id = ?", [candidate]).fetchall() == [("staging",)]
        deployment = promote(con, candidate, actor="test", reason="retry after the crash")
        assert deployment is not None and deployment.previous_model_id == serving
        assert promote(con, candidate, actor="test", reason="retried twice") is None  # already serving
        assert len(list_deployments(con)) == 2
    assert assert_recovered(data) == candidate


def test_kill_before_the_snapshot_rename_keeps_the_old_snapshot_whole(data: DataLayout) -> None:
    snapshot = data.snapshot_path
    with duckdb.connect(str(snapshot), read_only=True) as old:
        old_counts = dict(old.execute("SELECT table_name, row_count FROM snapshot_info").fetchall())
    land_day(data.landing_dir, 4)
    with connect(data) as con:
        ingest_events(con, data.landing_dir, data.quarantine_dir, "2025-01-05")
    kill_at(faults.SNAPSHOT_BEFORE_RENAME, data)
    leftovers = find_temp_leftovers(data.root)
    assert leftovers and all(p.name.startswith(f".{SNAPSHOT_NAME}.") for p in leftovers)
    with duckdb.connect(str(snapshot), read_only=True) as published:  # the complete old snapshot
        assert dict(published.execute("SELECT table_name, row_count FROM snapshot_info").fetchall()) == old_counts
        assert published.execute("SELECT count(*) FROM raw_events").fetchall() == [(old_counts["raw_events"],)]
    assert_recovered(data, leftovers=len(leftovers))
    with connect(data) as con:
        info = publish_snapshot(con, data.snapshots_dir, TABLES)
    assert info.tables["raw_events"] == old_counts["raw_events"] + ROWS_PER_DAY
    assert sorted(p.name for p in data.snapshots_dir.iterdir()) == [SNAPSHOT_NAME]
    assert_recovered(data)


def test_kill_after_recording_a_decision_rerecords_the_same_row(data: DataLayout) -> None:
    day = DAYS[3]
    kill_at(faults.DECISION_WRITTEN, data, day)
    assert_recovered(data)
    with connect(data) as con:
        [stored] = list_decisions(con)
        assert str(stored.day) == day and stored.outcome is None
        again = record_decision(con, day, decide(EVIDENCE, load_policy_config()), EVIDENCE)
        assert again.decision_id == stored.decision_id and again.decided_at == stored.decided_at
        assert con.execute("SELECT count(*) FROM decisions").fetchall() == [(1,)]
    assert_recovered(data)
