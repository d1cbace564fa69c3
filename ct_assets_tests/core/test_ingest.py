import os

import duckdb
import pandas as pd
import pytest

from ct_assets.core.common import parse_iso_day
from ct_assets.core.data import schema
from ct_assets.core.data.features import build_features, load_features
from ct_assets.core.data.ingest import (
    ingest_complaints,
    ingest_events,
    ingest_labels,
    label_coverage,
    list_landed_days,
)
from ct_assets_tests.builders import events_frame, labels_frame, write_parquet

DAY1, DAY2 = "2025-01-01", "2025-01-02"


@pytest.fixture
def dirs(tmp_path):
    return tmp_path / "landing", tmp_path / "quarantine"


@pytest.fixture
def con(tmp_path):
    with duckdb.connect(str(tmp_path / "warehouse.duckdb")) as connection:
        yield connection


def land(landing, day, name, frame):
    return write_parquet(frame, landing / day / name)


def count(con, sql, params=()):
    return con.execute(sql, list(params)).fetchall()[0][0]


def test_ingest_is_idempotent_per_day(con, dirs):
    landing, quarantine = dirs
    land(landing, DAY1, schema.EVENTS_FILE, events_frame(DAY1, 30))
    first = ingest_events(con, landing, quarantine, DAY1)
    second = ingest_events(con, landing, quarantine, DAY1)
    assert first.rows_valid == second.rows_valid == 30
    assert count(con, "SELECT count(*) FROM raw_events") == 30
    assert count(con, "SELECT count(*) FROM ingest_log WHERE day = ?", [DAY1]) == 2


def test_bad_rows_quarantined_good_rows_kept(con, dirs):
    landing, quarantine = dirs
    frame = events_frame(DAY1, 10).astype({"price": object})
    frame.loc[2, "price"] = "free"
    land(landing, DAY1, schema.EVENTS_FILE, frame)
    report = ingest_events(con, landing, quarantine, DAY1)
    assert (report.rows_valid, report.rows_quarantined) == (9, 1)
    assert report.top_reasons == (("price: not a number", 1),)
    assert con.execute("SELECT row_id, source FROM quarantine").fetchall() == [("3", "events")]


def test_corrupt_parquet_is_moved_to_quarantine_with_reason(con, dirs):
    landing, quarantine = dirs
    path = landing / DAY1 / schema.EVENTS_FILE
    path.parent.mkdir(parents=True)
    path.write_bytes(b"PAR1 this is not parquet")
    report = ingest_events(con, landing, quarantine, DAY1)
    assert report.file_status == "quarantined" and report.rows_valid == 0
    assert not path.exists()
    moved = list((quarantine / DAY1).glob("*events.parquet"))
    assert len(moved) == 1 and moved[0].read_bytes() == b"PAR1 this is not parquet"
    assert list((quarantine / DAY1).glob("*.reason.json"))
    reason = count(con, "SELECT reason FROM file_issues WHERE source = 'events'")
    assert "unreadable Parquet" in reason


def test_wrong_columns_quarantine_the_file(con, dirs):
    landing, quarantine = dirs
    land(landing, DAY1, schema.EVENTS_FILE, events_frame(DAY1, 5).drop(columns=["region"]))
    report = ingest_events(con, landing, quarantine, DAY1)
    assert report.file_status == "quarantined"
    assert "missing required columns ['region']" in report.warnings[0]


def test_header_only_file_ingests_zero_rows(con, dirs):
    landing, quarantine = dirs
    land(landing, DAY1, schema.EVENTS_FILE, events_frame(DAY1, 0))
    report = ingest_events(con, landing, quarantine, DAY1)
    assert report.file_status == "ingested" and report.rows_valid == 0


def test_missing_file_is_reported(con, dirs):
    landing, quarantine = dirs
    (landing / DAY1).mkdir(parents=True)
    report = ingest_events(con, landing, quarantine, DAY1)
    assert report.file_status == "missing"


def test_ids_seen_on_another_day_are_quarantined(con, dirs):
    landing, quarantine = dirs
    land(landing, DAY1, schema.EVENTS_FILE, events_frame(DAY1, 5, first_id=1))
    land(landing, DAY2, schema.EVENTS_FILE, events_frame(DAY2, 5, first_id=4))
    ingest_events(con, landing, quarantine, DAY1)
    report = ingest_events(con, landing, quarantine, DAY2)
    assert report.rows_valid == 3
    assert count(con, "SELECT count(DISTINCT event_id) FROM raw_events") == 8
    assert count(con, "SELECT count(*) FROM quarantine WHERE reasons LIKE '%already ingested%'") == 2


def test_labels_join_unknown_and_repeat_deliveries(con, dirs):
    landing, quarantine = dirs
    land(landing, DAY1, schema.EVENTS_FILE, events_frame(DAY1, 5, first_id=1))
    ingest_events(con, landing, quarantine, DAY1)
    land(landing, DAY1, schema.LABELS_FILE, labels_frame([1, 2, 99], [0, 1, 1], DAY1))
    land(landing, DAY2, schema.LABELS_FILE, labels_frame([2, 3], [1, 0], DAY2))
    first = ingest_labels(con, landing, quarantine, DAY1)
    second = ingest_labels(con, landing, quarantine, DAY2)
    assert (first.rows_valid, first.rows_quarantined) == (2, 1)
    assert (second.rows_valid, second.rows_quarantined) == (1, 1)
    rows = con.execute("SELECT event_id, is_fraud, strftime(event_day, '%Y-%m-%d') FROM labels "
                       "ORDER BY event_id").fetchall()
    assert rows == [(1, 0, DAY1), (2, 1, DAY1), (3, 0, DAY1)]
    coverage = label_coverage(con)
    assert coverage["coverage"].tolist() == [0.6]


def test_complaints_round_trip(con, dirs):
    landing, quarantine = dirs
    land(landing, DAY1, schema.COMPLAINTS_FILE,
         pd.DataFrame({"day": [pd.Timestamp(DAY1)], "orders": [100], "complaints": [7]}))
    ingest_complaints(con, landing, quarantine, DAY1)
    assert con.execute("SELECT orders, complaints FROM complaints").fetchall() == [(100, 7)]


def test_list_landed_days_ignores_temp_bad_names_and_symlinks(tmp_path):
    landing = tmp_path / "landing"
    for name in (DAY1, DAY2, ".2025-01-03.tmp", "2025-13-45x", "notes"):
        (landing / name).mkdir(parents=True)
    os.symlink(landing / DAY1, landing / "2025-01-09")
    assert list_landed_days(landing) == [DAY1, DAY2]


@pytest.mark.parametrize("bad", ["../../x", "2025-02-30", "20250101", "2025-W01-1", ""])
def test_landing_day_names_must_be_exactly_yyyy_mm_dd(bad):
    with pytest.raises(ValueError, match="landing day"):
        parse_iso_day(bad, "landing day")


def test_features_one_row_per_event_with_window_feature(con, dirs):
    landing, quarantine = dirs
    land(landing, DAY1, schema.EVENTS_FILE, events_frame(DAY1, 40, first_id=1, seed=1))
    land(landing, DAY2, schema.EVENTS_FILE, events_frame(DAY2, 40, first_id=100, seed=2))
    for day in (DAY1, DAY2):
        ingest_events(con, landing, quarantine, day)
    assert build_features(con, DAY2) == 40
    assert build_features(con, DAY2) == 40  # idempotent
    frame = load_features(con, DAY2, DAY2)
    assert len(frame) == 40 and frame["is_fraud"].isna().all()
    expected = con.execute(
        "SELECT e.event_id, e.price / (SELECT avg(price) FROM raw_events r WHERE r.region = e.region) "
        "FROM raw_events e WHERE day = ? ORDER BY event_id", [DAY2]).fetchall()
    assert frame["price_vs_region_7d"].round(9).tolist() == [round(v, 9) for _, v in expected]
    for column in schema.FEATURE_NUMERIC:
        assert frame[column].notna().all(), column
