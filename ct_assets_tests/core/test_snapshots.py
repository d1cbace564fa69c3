import subprocess
import sys

import duckdb
import pytest

from ct_assets.core.backtest.store import ensure_backtest_tables
from ct_assets.core.data.features import ensure_features_table
from ct_assets.core.data.ingest import ensure_ingest_tables
from ct_assets.core.data.layout import SNAPSHOT_NAME
from ct_assets.core.decision.records import ensure_decision_tables
from ct_assets.core.monitoring.store import ensure_drift_tables
from ct_assets.core.ops.alerts import ensure_alert_tables
from ct_assets.core.ops.snapshots import (
    ANALYST_TABLE_SETUP,
    ANALYST_TABLES,
    ensure_analyst_tables,
    publish_snapshot,
)
from ct_assets.core.release.registry import ensure_registry_tables
from ct_assets.core.release.rollout_store import ensure_rollout_tables

# Every table a store creates in the live warehouse.
ENSURE_STORES = (ensure_ingest_tables, ensure_features_table, ensure_drift_tables, ensure_registry_tables,
                 ensure_decision_tables, ensure_alert_tables, ensure_rollout_tables, ensure_backtest_tables)


def test_the_snapshot_sets_up_every_store_it_copies():
    assert set(ANALYST_TABLE_SETUP) == set(ENSURE_STORES)
    with duckdb.connect() as con:
        ensure_analyst_tables(con)
        tables = {row[0] for row in con.execute("SELECT table_name FROM information_schema.tables").fetchall()}
    assert set(ANALYST_TABLES) <= tables

READER = """
import sys, duckdb
con = duckdb.connect(sys.argv[1], read_only=True)
print(con.execute("SELECT sum(x) FROM numbers").fetchall()[0][0])
"""


def read_in_other_process(path):
    return subprocess.run([sys.executable, "-c", READER, str(path)], capture_output=True, text=True)


def test_snapshot_is_readable_while_the_live_database_is_held_by_a_writer(tmp_path):
    live = tmp_path / "warehouse.duckdb"
    with duckdb.connect(str(live)) as con:
        con.execute("CREATE TABLE numbers AS SELECT range AS x FROM range(10)")
        info = publish_snapshot(con, tmp_path / "snapshots", ("numbers", "not_created_yet"))
        con.execute("INSERT INTO numbers VALUES (100)")  # the writer keeps going
        assert info.tables == {"numbers": 10}
        # The live file refuses other processes, even read-only: that is why snapshots exist.
        assert read_in_other_process(live).returncode != 0
        reader = read_in_other_process(info.path)
        assert reader.returncode == 0, reader.stderr
        assert reader.stdout.strip() == "45"
    with duckdb.connect(str(info.path), read_only=True) as snap:
        assert snap.execute("SELECT table_name, row_count FROM snapshot_info").fetchall() == [("numbers", 10)]


def test_republish_replaces_atomically_and_leaves_no_temp_files(tmp_path):
    with duckdb.connect(str(tmp_path / "warehouse.duckdb")) as con:
        con.execute("CREATE TABLE numbers AS SELECT range AS x FROM range(3)")
        publish_snapshot(con, tmp_path / "snapshots", ("numbers",))
        with duckdb.connect(str(tmp_path / "snapshots" / SNAPSHOT_NAME), read_only=True) as old_reader:
            con.execute("INSERT INTO numbers VALUES (10)")
            publish_snapshot(con, tmp_path / "snapshots", ("numbers",))
            # A reader of the old snapshot still sees its complete old copy.
            assert old_reader.execute("SELECT count(*) FROM numbers").fetchall() == [(3,)]
    assert sorted(p.name for p in (tmp_path / "snapshots").iterdir()) == [SNAPSHOT_NAME]
    with duckdb.connect(str(tmp_path / "snapshots" / SNAPSHOT_NAME), read_only=True) as reader:
        assert reader.execute("SELECT count(*) FROM numbers").fetchall() == [(4,)]


def test_bad_table_name_is_refused_and_keeps_the_previous_snapshot(tmp_path):
    with duckdb.connect(str(tmp_path / "warehouse.duckdb")) as con:
        con.execute("CREATE TABLE numbers AS SELECT range AS x FROM range(3)")
        publish_snapshot(con, tmp_path / "snapshots", ("numbers",))
        con.execute("INSERT INTO numbers VALUES (7)")
        with pytest.raises(ValueError, match="not a table name"):
            publish_snapshot(con, tmp_path / "snapshots", ("numbers", 'x"; DROP TABLE numbers; --'))
        assert con.execute("SELECT count(*) FROM numbers").fetchall() == [(4,)]
    with duckdb.connect(str(tmp_path / "snapshots" / SNAPSHOT_NAME), read_only=True) as reader:
        assert reader.execute("SELECT count(*) FROM numbers").fetchall() == [(3,)]


def test_the_snapshot_holds_every_table_the_stores_declare_and_create(tmp_path):
    assert sorted(ANALYST_TABLES) == sorted({
        "raw_events", "labels", "complaints", "features", "quarantine", "file_issues", "ingest_log",
        "drift_reports", "drift_feature_results", "concept_drift_results", "complaint_results",
        "model_registry", "deployments", "decisions", "alerts", "rollouts", "rollout_steps",
        "backtest_runs", "backtest_daily"})
    with duckdb.connect(str(tmp_path / "warehouse.duckdb")) as con:
        for ensure in ENSURE_STORES:
            ensure(con)
        created = {name for (name,) in con.execute("SELECT table_name FROM information_schema.tables").fetchall()}
        info = publish_snapshot(con, tmp_path / "snapshots", ANALYST_TABLES)
    assert created == set(ANALYST_TABLES)  # a new store table is declared, or analysts never see it
    assert set(info.tables) == set(ANALYST_TABLES)
