import subprocess
import sys

import duckdb
import pytest

from ct_assets.core.ops.snapshots import SNAPSHOT_NAME, publish_snapshot

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
