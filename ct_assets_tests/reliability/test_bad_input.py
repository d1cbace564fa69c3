"""Bad input of every kind: a clear error or a quarantine record, and nothing good of the same day lost.

Every landing case goes through the real path (Parquet file on disk -> ingest -> DuckDB file) and then
checks that the day's good rows, its labels and its complaints were still ingested.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import duckdb
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from ct_assets import cli
from ct_assets.core.data import ingest, schema
from ct_assets.core.data.ingest import (
    ingest_complaints,
    ingest_events,
    ingest_labels,
    iter_parquet_batches,
    list_landed_days,
    scan_landing,
)
from ct_assets.core.decision.policy_config import DEFAULT_POLICY_PATH, load_policy_config
from ct_assets.core.release.deployment import promote
from ct_assets.core.release.registry import (
    ModelRecord,
    ensure_registry_tables,
    register_candidate,
)
from ct_assets.core.training.artifacts import MANIFEST_FILE, WEIGHTS_FILE, load_model, save_model
from ct_assets_tests.builders import events_frame, labels_frame, write_parquet

DAY0, DAY1 = "2025-01-01", "2025-01-02"
DAY0_IDS = list(range(1000, 1010))  # ingested before every case, so DAY1's labels have orders to join
N = 10  # good DAY1 orders per case: ids 1..10; the bad row is id 4 (row 3)
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def dirs(tmp_path: Path) -> tuple[Path, Path]:
    return tmp_path / "landing", tmp_path / "quarantine"


@pytest.fixture
def con(tmp_path: Path, dirs: tuple[Path, Path]) -> Iterator[duckdb.DuckDBPyConnection]:
    landing, quarantine = dirs
    with duckdb.connect(str(tmp_path / "warehouse.duckdb")) as connection:
        write_parquet(events_frame(DAY0, len(DAY0_IDS), first_id=DAY0_IDS[0], seed=9), landing / DAY0 / schema.EVENTS_FILE)
        ingest_events(connection, landing, quarantine, DAY0)
        yield connection


def land_good_side_files(landing: Path) -> None:
    """The same day's labels (for DAY0 orders) and complaints: they must survive a bad events file."""
    write_parquet(labels_frame(DAY0_IDS[:6], [0, 1, 0, 0, 1, 0], DAY1), landing / DAY1 / schema.LABELS_FILE)
    write_parquet(pd.DataFrame({"day": [pd.Timestamp(DAY1)], "orders": [N], "complaints": [1]}),
                  landing / DAY1 / schema.COMPLAINTS_FILE)


def ingest_day(con: duckdb.DuckDBPyConnection, dirs: tuple[Path, Path], day: str = DAY1) -> dict[str, ingest.IngestReport]:
    landing, quarantine = dirs
    return {"events": ingest_events(con, landing, quarantine, day),
            "labels": ingest_labels(con, landing, quarantine, day),
            "complaints": ingest_complaints(con, landing, quarantine, day)}


def rows(con: duckdb.DuckDBPyConnection, sql: str, params: list[object] | None = None) -> list[tuple]:
    return con.execute(sql, params or []).fetchall()


def event_ids(con: duckdb.DuckDBPyConnection, day: str = DAY1) -> list[int]:
    return [r[0] for r in rows(con, "SELECT event_id FROM raw_events WHERE day = ? ORDER BY event_id", [day])]


def assert_side_files_kept(con: duckdb.DuckDBPyConnection) -> None:
    assert rows(con, "SELECT count(*) FROM labels WHERE arrival_day = ?", [DAY1]) == [(6,)]
    assert rows(con, "SELECT orders, complaints FROM complaints WHERE day = ?", [DAY1]) == [(N, 1)]
    assert event_ids(con, DAY0) == DAY0_IDS


def with_value(frame: pd.DataFrame, column: str, value: object, row: int = 3) -> pd.DataFrame:
    """``frame`` with one cell replaced, the column widened so the file really carries the value."""
    frame = frame.copy()
    if isinstance(value, str) and frame[column].dtype != object:
        frame[column] = frame[column].astype(str)
    elif value is None or isinstance(value, str):
        frame[column] = frame[column].astype(object)
    elif isinstance(value, float) and frame[column].dtype != float:
        frame[column] = frame[column].astype(float)
    frame.loc[row, column] = value
    return frame


# --- row-level cases: the bad row is quarantined with its reason, the other nine are ingested -------------

ROW_CASES = [
    ("text in a numeric column", "price", "free", "price: not a number"),
    ("unparseable timestamp", schema.TIME_COLUMN, "yesterday-ish", "event_ts: not a timestamp"),
    ("timestamp on another day", schema.TIME_COLUMN, "2025-01-09 10:00:00", "event_ts: not on the landing day"),
    ("NaN", "price", float("nan"), "price: missing value"),
    ("+inf", "sensor_latency_ms", math.inf, "sensor_latency_ms: not finite"),
    ("-inf", "sensor_motion", -math.inf, "sensor_motion: not finite"),
    ("negative count", "quantity", -2, "quantity: failed in_range"),
    ("negative price", "price", -3.0, "price: failed in_range"),
    ("share above its range", "discount", 1.5, "discount: failed in_range"),
    ("value beyond the sensor range", "sensor_signal", 5_000.0, "sensor_signal: failed in_range"),
    ("fractional count", "quantity", 2.5, "quantity: not an integer"),
    ("missing text", "region", None, "region: not text"),
    ("unknown category value", "channel", "fax", "channel: failed isin"),
    ("missing id", schema.ID_COLUMN, None, "event_id: missing value"),
    ("negative id", schema.ID_COLUMN, -5, "event_id: failed greater_than_or_equal_to"),
    ("over-long search term", "query_term", "x" * 65, "query_term: failed str_length"),
]


@pytest.mark.parametrize("column, value, reason", [c[1:] for c in ROW_CASES], ids=[c[0] for c in ROW_CASES])
def test_bad_row_is_quarantined_and_the_rest_of_the_day_is_ingested(con, dirs, column, value, reason):
    landing, _ = dirs
    write_parquet(with_value(events_frame(DAY1, N), column, value), landing / DAY1 / schema.EVENTS_FILE)
    land_good_side_files(landing)
    report = ingest_day(con, dirs)["events"]
    assert (report.file_status, report.rows_read, report.rows_valid, report.rows_quarantined) == ("ingested", N, 9, 1)
    assert event_ids(con) == [1, 2, 3, 5, 6, 7, 8, 9, 10]
    [(row_id, reasons, row_json)] = rows(con, "SELECT row_id, reasons, row_json FROM quarantine WHERE source = 'events'")
    assert reason in reasons and row_id in ("4", "-5", "nan", "None")
    assert json.loads(row_json)[column] is not None or value is None  # the raw row is kept for inspection
    assert_side_files_kept(con)


def test_non_utf8_text_quarantines_only_that_row(con, dirs):
    landing, _ = dirs
    table = pa.Table.from_pandas(events_frame(DAY1, N), preserve_index=False)
    regions = [v.encode() for v in table["region"].to_pylist()]
    regions[3] = b"nor\xff\xfeth"  # not UTF-8, in a column the file declares as UTF-8 text
    invalid = pa.array(regions, type=pa.binary()).view(pa.string())
    table = table.set_column(table.schema.get_field_index("region"), "region", invalid)
    (landing / DAY1).mkdir(parents=True)
    pq.write_table(table, landing / DAY1 / schema.EVENTS_FILE)
    land_good_side_files(landing)
    report = ingest_day(con, dirs)["events"]
    assert (report.rows_valid, report.rows_quarantined) == (9, 1)
    assert event_ids(con) == [1, 2, 3, 5, 6, 7, 8, 9, 10]
    [(reasons, row_json)] = rows(con, "SELECT reasons, row_json FROM quarantine")
    assert "region: not UTF-8 text" in reasons and "nor" in json.loads(row_json)["region"]
    assert_side_files_kept(con)


def test_duplicate_ids_within_a_day_keep_the_first(con, dirs):
    landing, _ = dirs
    frame = events_frame(DAY1, N)
    frame.loc[[6, 8], schema.ID_COLUMN] = 2
    write_parquet(frame, landing / DAY1 / schema.EVENTS_FILE)
    land_good_side_files(landing)
    report = ingest_day(con, dirs)["events"]
    assert (report.rows_valid, report.rows_quarantined) == (8, 2)
    assert event_ids(con) == [1, 2, 3, 4, 5, 6, 8, 10]
    assert rows(con, "SELECT DISTINCT reasons FROM quarantine") == [("event_id: duplicate id within file (value 2.0)",)]
    assert_side_files_kept(con)


def test_ids_already_ingested_on_another_day_are_quarantined(con, dirs):
    landing, _ = dirs
    write_parquet(events_frame(DAY1, N, first_id=DAY0_IDS[-2]), landing / DAY1 / schema.EVENTS_FILE)
    land_good_side_files(landing)
    report = ingest_day(con, dirs)["events"]
    assert (report.rows_valid, report.rows_quarantined) == (8, 2)
    assert event_ids(con) == list(range(DAY0_IDS[-1] + 1, DAY0_IDS[-1] + 9))
    assert rows(con, "SELECT count(*) FROM quarantine WHERE reasons LIKE '%already ingested on another day%'") == [(2,)]
    assert rows(con, "SELECT count(*), count(DISTINCT event_id) FROM raw_events") == [(18, 18)]


# --- labels and complaints ---------------------------------------------------------------------------------

LABEL_CASES = [
    ("label for an unknown order", [1000, 1001, 99_999], [0, 1, 1], 2, "event_id: unknown order"),
    ("conflicting duplicate labels", [1000, 1001, 1001, 1002], [0, 1, 0, 1], 2, "conflicting labels"),
    ("label outside {0, 1}", [1000, 1001, 1002], [0, 1, 2], 2, "is_fraud: failed isin"),
    ("negative label", [1000, 1001, 1002], [0, -1, 1], 2, "is_fraud: failed isin"),
]


@pytest.mark.parametrize("ids, values, n_valid, reason", [c[1:] for c in LABEL_CASES],
                         ids=[c[0] for c in LABEL_CASES])
def test_bad_labels_are_quarantined_and_good_labels_kept(con, dirs, ids, values, n_valid, reason):
    landing, quarantine = dirs
    write_parquet(labels_frame(ids, values, DAY1), landing / DAY1 / schema.LABELS_FILE)
    report = ingest_labels(con, landing, quarantine, DAY1)
    assert report.rows_valid == n_valid and report.rows_quarantined == len(ids) - n_valid
    assert rows(con, "SELECT count(*) FROM labels") == [(n_valid,)]
    assert all(reason in r for (r,) in rows(con, "SELECT reasons FROM quarantine WHERE source = 'labels'"))


def test_label_with_wrong_type_is_quarantined(con, dirs):
    landing, quarantine = dirs
    frame = labels_frame([1000, 1001], [0, 1], DAY1).astype({schema.FRAUD_LABEL_COLUMN: str})
    frame.loc[1, schema.FRAUD_LABEL_COLUMN] = "yes"
    write_parquet(frame, landing / DAY1 / schema.LABELS_FILE)
    report = ingest_labels(con, landing, quarantine, DAY1)
    assert (report.rows_valid, report.rows_quarantined) == (1, 1)
    assert rows(con, "SELECT reasons FROM quarantine")[0][0].startswith("is_fraud: not a number")


def test_label_delivered_again_on_a_later_day_is_quarantined(con, dirs):
    landing, quarantine = dirs
    write_parquet(labels_frame([1000, 1001], [0, 1], DAY1), landing / DAY1 / schema.LABELS_FILE)
    write_parquet(labels_frame([1001, 1002], [0, 1], "2025-01-03"), landing / "2025-01-03" / schema.LABELS_FILE)
    ingest_labels(con, landing, quarantine, DAY1)
    report = ingest_labels(con, landing, quarantine, "2025-01-03")
    assert (report.rows_valid, report.rows_quarantined) == (1, 1)
    assert rows(con, "SELECT event_id, is_fraud FROM labels ORDER BY event_id") == [(1000, 0), (1001, 1), (1002, 1)]


def test_bad_complaint_rows_are_quarantined(con, dirs):
    landing, quarantine = dirs
    frame = pd.DataFrame({"day": [pd.Timestamp(DAY1)] * 3, "orders": [100, 100, -5], "complaints": [4, 9, 1]})
    write_parquet(frame, landing / DAY1 / schema.COMPLAINTS_FILE)
    report = ingest_complaints(con, landing, quarantine, DAY1)
    assert (report.rows_valid, report.rows_quarantined) == (1, 2)
    assert rows(con, "SELECT orders, complaints FROM complaints") == [(100, 4)]
    reasons = " ".join(r for (r,) in rows(con, "SELECT reasons FROM quarantine"))
    assert "orders: negative count" in reasons and "more than one complaint row" in reasons


# --- file-level cases: the file is quarantined whole (moved, with its reason); the day's other files are not --


def write_empty(path: Path) -> None:
    path.write_bytes(b"")


def write_truncated(path: Path) -> None:
    write_parquet(events_frame(DAY1, 500), path)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def write_garbage(path: Path) -> None:
    path.write_bytes(b"PAR1" + os.urandom(300) + b"PAR1")


def write_corrupt_middle(path: Path) -> None:
    # Four row groups; a damaged page header in the last one is only found after three good batches.
    pq.write_table(pa.Table.from_pandas(events_frame(DAY1, 4000), preserve_index=False), path, row_group_size=1000)
    offset = pq.ParquetFile(path).metadata.row_group(3).column(2).data_page_offset
    blob = bytearray(path.read_bytes())
    blob[offset:offset + 64] = b"\xff" * 64
    path.write_bytes(bytes(blob))


def write_missing_column(path: Path) -> None:
    write_parquet(events_frame(DAY1, N).drop(columns=["region"]), path)


def write_directory(path: Path) -> None:
    path.mkdir()


def write_fifo(path: Path) -> None:
    os.mkfifo(path)  # reading it would block forever


FILE_CASES: list[tuple[str, Callable[[Path], None], str]] = [
    ("empty file", write_empty, "unreadable Parquet"),
    ("truncated Parquet", write_truncated, "unreadable Parquet"),
    ("random bytes between Parquet magic", write_garbage, "unreadable Parquet"),
    ("corrupt row group mid-file", write_corrupt_middle, "unreadable Parquet"),
    ("missing required column", write_missing_column, "missing required columns ['region']"),
    ("a directory named events.parquet", write_directory, "not a regular file"),
    ("a named pipe named events.parquet", write_fifo, "not a regular file"),
]


@pytest.mark.parametrize("write, reason", [c[1:] for c in FILE_CASES], ids=[c[0] for c in FILE_CASES])
def test_unusable_file_is_moved_to_quarantine_and_the_day_goes_on(con, dirs, write, reason):
    landing, quarantine = dirs
    path = landing / DAY1 / schema.EVENTS_FILE
    path.parent.mkdir(parents=True)
    write(path)
    land_good_side_files(landing)
    report = ingest_day(con, dirs)["events"]
    assert report.file_status == "quarantined" and report.rows_valid == 0 and reason in report.warnings[0]
    assert event_ids(con) == []  # none of an unusable file's rows, not even the readable first batches
    assert not path.exists()
    assert len(list((quarantine / DAY1).glob(f"*{schema.EVENTS_FILE}"))) == 1
    [reason_file] = (quarantine / DAY1).glob("*.reason.json")
    assert reason in json.loads(reason_file.read_text())["reason"]
    assert rows(con, "SELECT action, moved_to IS NOT NULL FROM file_issues") == [("quarantined", True)]
    assert_side_files_kept(con)


def test_header_only_file_ingests_zero_rows_cleanly(con, dirs):
    landing, _ = dirs
    write_parquet(events_frame(DAY1, 0), landing / DAY1 / schema.EVENTS_FILE)
    land_good_side_files(landing)
    report = ingest_day(con, dirs)["events"]
    assert (report.file_status, report.rows_read, report.rows_valid) == ("ingested", 0, 0)
    assert_side_files_kept(con)


def test_header_only_file_with_a_missing_column_is_still_refused(con, dirs):
    landing, _ = dirs
    write_parquet(events_frame(DAY1, 0).drop(columns=["price"]), landing / DAY1 / schema.EVENTS_FILE)
    report = ingest_day(con, dirs)["events"]
    assert report.file_status == "quarantined" and "missing required columns ['price']" in report.warnings[0]


def test_extra_columns_are_reported_and_dropped(con, dirs):
    landing, _ = dirs
    write_parquet(events_frame(DAY1, N).assign(debug_flag=1, notes="x"), landing / DAY1 / schema.EVENTS_FILE)
    land_good_side_files(landing)
    report = ingest_day(con, dirs)["events"]
    assert report.rows_valid == N
    assert report.warnings == ("events: extra columns ignored: ['debug_flag', 'notes']",)
    assert "debug_flag" not in [c for (c,) in rows(con, "SELECT column_name FROM information_schema.columns "
                                                     "WHERE table_name = 'raw_events'")]
    assert_side_files_kept(con)


def test_huge_file_is_streamed_in_batches_with_duplicates_caught_across_batches(con, dirs, monkeypatch):
    landing, quarantine = dirs
    monkeypatch.setattr(ingest, "BATCH_ROWS", 1_000)  # 5 batches instead of 2M rows: same code path
    frame = events_frame(DAY1, 5_000, first_id=20_000)
    frame.loc[4_500, schema.ID_COLUMN] = 20_009  # duplicate of a row in the first batch
    frame = with_value(frame, "price", -1.0, row=3_210)  # one bad row in the fourth batch
    path = write_parquet(frame, landing / DAY1 / schema.EVENTS_FILE)
    assert [len(batch) for batch in iter_parquet_batches(path, 1_000)] == [1_000] * 5
    labels = labels_frame([1000, 1001] * 600, [0, 1] * 600, DAY1)  # the repeats sit in later batches
    write_parquet(labels, landing / DAY1 / schema.LABELS_FILE)

    report = ingest_events(con, landing, quarantine, DAY1)
    assert (report.rows_read, report.rows_valid, report.rows_quarantined) == (5_000, 4_998, 2)
    assert rows(con, "SELECT count(*), count(DISTINCT event_id) FROM raw_events WHERE day = ?", [DAY1]) == [(4_998, 4_998)]
    assert dict(report.top_reasons) == {"event_id: duplicate id within file": 1,
                                       "price: failed in_range(0.01, 100000.0)": 1}
    label_report = ingest_labels(con, landing, quarantine, DAY1)
    assert (label_report.rows_valid, label_report.rows_quarantined) == (2, 1_198)
    assert rows(con, "SELECT event_id, is_fraud FROM labels ORDER BY event_id") == [(1000, 0), (1001, 1)]
    # Re-ingesting the day replaces it: same counts, nothing duplicated.
    assert ingest_events(con, landing, quarantine, DAY1).rows_valid == 4_998
    assert rows(con, "SELECT count(*) FROM raw_events WHERE day = ?", [DAY1]) == [(4_998,)]


# --- the landing zone: names, symlinks and dates ----------------------------------------------------------


def test_path_traversal_day_is_refused_before_anything_is_read(con, dirs, tmp_path):
    landing, quarantine = dirs
    outside = tmp_path / "x"
    write_parquet(events_frame(DAY1, N), outside / schema.EVENTS_FILE)
    for day in ("../x", "../../x", "..", f"{DAY1}/../../x", "/etc"):
        with pytest.raises(ValueError, match="landing day must look like YYYY-MM-DD"):
            ingest_events(con, landing, quarantine, day)
    assert event_ids(con) == [] and (outside / schema.EVENTS_FILE).exists()
    assert rows(con, "SELECT count(*) FROM ingest_log") == [(1,)]  # only DAY0's


def test_symlinked_day_folder_is_neither_listed_nor_followed(con, dirs, tmp_path):
    landing, quarantine = dirs
    outside = tmp_path / "elsewhere"
    write_parquet(events_frame(DAY1, N), outside / schema.EVENTS_FILE)
    (landing / DAY1).symlink_to(outside, target_is_directory=True)
    scan = scan_landing(landing)
    assert scan.days == (DAY0,)
    assert scan.ignored == ((DAY1, f"{DAY1!r} is a symlink; landing entries are never followed"),)
    report = ingest_events(con, landing, quarantine, DAY1)  # e.g. a partition materialized by hand
    assert report.file_status == "quarantined" and "is a symlink" in report.warnings[0]
    assert event_ids(con) == [] and (outside / schema.EVENTS_FILE).exists()
    assert rows(con, "SELECT action FROM file_issues WHERE day = ?", [DAY1]) == [("ignored",)]


def test_symlinked_landing_file_is_refused_and_recorded(con, dirs, tmp_path):
    landing, _ = dirs
    secret = write_parquet(events_frame(DAY1, N), tmp_path / "secret" / "orders.parquet")
    (landing / DAY1).mkdir(parents=True)
    (landing / DAY1 / schema.EVENTS_FILE).symlink_to(secret)
    land_good_side_files(landing)
    report = ingest_day(con, dirs)["events"]
    assert report.file_status == "quarantined" and "is a symlink" in report.warnings[0]
    assert event_ids(con) == [] and secret.exists()
    assert rows(con, "SELECT action, source FROM file_issues") == [("ignored", "events")]
    assert_side_files_kept(con)


def test_bad_day_folders_are_ignored_with_a_visible_record(dirs):
    landing, _ = dirs
    for name in (DAY0, DAY1, "2026-02-30", "not-a-day", "2025-13-01", ".2025-01-05.tmp", "%2E%2E%2F%2E%2E%2Fx", "nor\udcffth"):
        (landing / name).mkdir(parents=True, exist_ok=True)
    (landing / "2025-01-07").write_text("a file, not a day folder")
    (landing / "2025-01-08").symlink_to(landing / "missing-target")  # dangling
    scan = scan_landing(landing)
    assert scan.days == (DAY0, DAY1) and list_landed_days(landing) == [DAY0, DAY1]
    reasons = dict(scan.ignored)
    assert set(reasons) == {"2026-02-30", "not-a-day", "2025-13-01", "%2E%2E%2F%2E%2E%2Fx", "nor\udcffth", "2025-01-07",
                            "2025-01-08"}
    assert "is not a calendar date" in reasons["2026-02-30"]
    assert "must look like YYYY-MM-DD" in reasons["not-a-day"]
    assert "is not a directory" in reasons["2025-01-07"] and "symlink" in reasons["2025-01-08"]
    assert all(reason.isprintable() for reason in reasons.values())  # safe to log, even undecodable names


# --- SQL-looking values are data -------------------------------------------------------------------------

INJECTION = "'; DROP TABLE raw_events; --"


def test_sql_looking_values_are_stored_verbatim_and_tables_survive(con, dirs):
    landing, quarantine = dirs
    frame = with_value(events_frame(DAY1, N), "query_term", INJECTION, row=0)  # open vocabulary: valid
    frame = with_value(frame, "category", '"); DELETE FROM labels; --', row=1)  # closed vocabulary: quarantined
    write_parquet(frame, landing / DAY1 / schema.EVENTS_FILE)
    land_good_side_files(landing)
    ingest_day(con, dirs)
    assert rows(con, "SELECT query_term FROM raw_events WHERE event_id = 1") == [(INJECTION,)]
    [(row_json,)] = rows(con, "SELECT row_json FROM quarantine WHERE row_id = '2'")
    assert json.loads(row_json)["category"] == '"); DELETE FROM labels; --'
    assert event_ids(con) == [1, *range(3, N + 1)]
    assert_side_files_kept(con)
    with pytest.raises(ValueError, match="landing day"):
        ingest_events(con, landing, quarantine, f"{DAY1}'; DROP TABLE raw_events; --")
    tables = {t for (t,) in rows(con, "SELECT table_name FROM information_schema.tables")}
    assert {"raw_events", "labels", "complaints", "quarantine", "file_issues", "ingest_log"} <= tables


# --- configuration ---------------------------------------------------------------------------------------

POLICY_CASES = [
    ("unknown key (typo)", "min_severity_score = 0.3", "min_severity_scor = 0.3", "drift.min_severity_scor"),
    ("missing key", "retrain_drop = 0.08\n", "\n", "metric.retrain_drop"),
    ("wrong type", "min_batches_for_retrain = 2.5", 'min_batches_for_retrain = "lots"',
     "labels.min_batches_for_retrain"),
    ("out of range", "min_severity_score = 0.3", "min_severity_score = 3.0", "drift.min_severity_score"),
    ("negative", "max_age_days = 30.0", "max_age_days = -1.0", "staleness.max_age_days"),
    ("bad choice", 'when_scarce_for_retrain = "fine_tune"', 'when_scarce_for_retrain = "guess"',
     "labels.when_scarce_for_retrain"),
    ("inconsistent pair", "fine_tune_drop = 0.02", "fine_tune_drop = 0.5", "metric.retrain_drop"),
    ("not TOML", "[drift]", "[drift", "not valid TOML"),
]


@pytest.mark.parametrize("old, new, named", [c[1:] for c in POLICY_CASES], ids=[c[0] for c in POLICY_CASES])
def test_invalid_policy_config_names_the_key(tmp_path, old, new, named):
    text = DEFAULT_POLICY_PATH.read_text()
    assert old in text
    path = tmp_path / "policy.toml"
    path.write_text(text.replace(old, new, 1))
    with pytest.raises(ValueError) as error:
        load_policy_config(path)
    assert named in str(error.value)


# --- model artifacts -------------------------------------------------------------------------------------


def test_manifest_whose_weights_hash_does_not_match_is_refused(tmp_path, small_model):
    stored = save_model(tmp_path, small_model, {})
    manifest_path = stored.path / MANIFEST_FILE
    manifest = json.loads(manifest_path.read_text())
    manifest["weights_sha256"] = "0" * 64  # someone "fixed" the manifest, or swapped the weights
    manifest_path.write_text(json.dumps(manifest))
    with pytest.raises(ValueError, match=f"{stored.model_id}: weights sha256 .* does not match"):
        load_model(tmp_path, stored.model_id)


def test_weights_swapped_for_another_model_are_refused(tmp_path, two_models):
    first = save_model(tmp_path / "a", two_models[0], {})
    second = save_model(tmp_path / "b", two_models[1], {})
    assert first.model_id != second.model_id
    (first.path / WEIGHTS_FILE).write_bytes((second.path / WEIGHTS_FILE).read_bytes())
    with pytest.raises(ValueError, match="refusing to load a tampered or corrupt model"):
        load_model(tmp_path / "a", first.model_id)


# --- commands --------------------------------------------------------------------------------------------


@pytest.fixture
def deployed(tmp_path, monkeypatch) -> Path:
    """A warehouse with one production model and one candidate; CT_* env pointing at it."""
    database = tmp_path / "data" / "warehouse.duckdb"
    database.parent.mkdir()
    with duckdb.connect(str(database)) as connection:
        ensure_registry_tables(connection)
        for model_id in ("m-aaaaaaaaaaaa", "m-bbbbbbbbbbbb"):
            register_candidate(connection, ModelRecord(model_id=model_id, training_path="retrain"))
        promote(connection, "m-aaaaaaaaaaaa", actor="test", reason="first model")
    monkeypatch.setenv("CT_DATA_DIR", str(database.parent))
    monkeypatch.setenv("CT_DUCKDB_PATH", str(database))
    return database


def dump(database: Path) -> list[tuple]:
    with duckdb.connect(str(database), read_only=True) as connection:
        return (rows(connection, "SELECT model_id, status, status_reason FROM model_registry ORDER BY model_id")
                + rows(connection, "SELECT deployment_id, model_id, action FROM deployments ORDER BY deployment_id"))


@pytest.mark.parametrize("argv", [
    ["approve", "m-000000000000", "--by", "ana", "--reason", "looks good"],
    ["approve", "../../etc/passwd", "--by", "ana", "--reason", "looks good", "--override-failed-gates"],
    ["reject", "m-ffffffffffff", "--by", "ana", "--reason", "no"],
], ids=["approve", "approve-path-like", "reject"])
def test_unknown_model_id_is_a_clear_error_and_changes_nothing(deployed, capsys, argv):
    before = dump(deployed)
    assert cli.main(argv) == 2
    assert f"unknown model id {argv[1]!r}" in capsys.readouterr().err
    assert dump(deployed) == before


def test_rollback_without_a_previous_model_is_a_clear_error_and_changes_nothing(deployed, capsys):
    before = dump(deployed)
    assert cli.main(["rollback", "--by", "ana", "--reason", "bad"]) == 2
    assert "has no previous production model" in capsys.readouterr().err
    assert dump(deployed) == before


def test_commands_on_a_missing_warehouse_fail_clearly_without_creating_it(tmp_path, monkeypatch, capsys):
    database = tmp_path / "nowhere" / "warehouse.duckdb"
    monkeypatch.setenv("CT_DUCKDB_PATH", str(database))
    assert cli.main(["approve", "m-000000000000", "--by", "ana", "--reason", "x"]) == 2
    assert "no warehouse at" in capsys.readouterr().err
    assert not database.exists()


def test_unknown_model_id_exits_non_zero_from_the_real_command(deployed):
    before = dump(deployed)
    result = subprocess.run([sys.executable, "-m", "ct_assets.cli", "approve", "m-000000000000", "--by", "ana",
                             "--reason", "x"], capture_output=True, text=True, cwd=REPO, env=os.environ.copy(),
                            check=False)
    assert result.returncode == 2 and "unknown model id 'm-000000000000'" in result.stderr
    assert "Traceback" not in result.stderr
    assert dump(deployed) == before


def test_unknown_model_id_before_any_model_exists_is_a_clear_error(tmp_path, monkeypatch, capsys):
    database = tmp_path / "warehouse.duckdb"
    duckdb.connect(str(database)).close()  # pipeline ran, but nothing was ever registered
    monkeypatch.setenv("CT_DUCKDB_PATH", str(database))
    assert cli.main(["reject", "m-000000000000", "--by", "ana", "--reason", "x"]) == 2
    assert "unknown model id" in capsys.readouterr().err
    assert cli.main(["rollback", "--by", "ana", "--reason", "x"]) == 2
    assert "no model is in production" in capsys.readouterr().err
