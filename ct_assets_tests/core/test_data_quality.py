"""The data-quality checks on real warehouse tables: each passing, failing, and at its threshold."""

from pathlib import Path

import duckdb
import pytest

from ct_assets.core.data import quality, schema
from ct_assets.core.data.features import build_features
from ct_assets.core.data.ingest import ingest_events, ingest_labels
from ct_assets.core.monitoring.store import ensure_drift_tables
from ct_assets_tests.builders import events_frame, labels_frame, write_parquet

DAY = "2025-01-10"


@pytest.fixture
def landing(tmp_path: Path) -> Path:
    return tmp_path / "landing"


@pytest.fixture
def quarantine(tmp_path: Path) -> Path:
    return tmp_path / "quarantine"


def land_events(con: duckdb.DuckDBPyConnection, landing: Path, quarantine: Path, day: str, n: int,
                first_id: int = 1, bad_prices: int = 0) -> None:
    """Land and ingest ``n`` orders on ``day``, the first ``bad_prices`` of them with an unreadable price."""
    frame = events_frame(day, n, first_id=first_id)
    if bad_prices:
        frame = frame.astype({"price": object})
        frame.loc[: bad_prices - 1, "price"] = "free"
    write_parquet(frame, landing / day / schema.EVENTS_FILE)
    ingest_events(con, landing, quarantine, day)


def land_labels(con: duckdb.DuckDBPyConnection, landing: Path, quarantine: Path, day: str,
                labels: list[int]) -> None:
    """Labels arriving on ``day`` for the orders with ids 1..len(labels)."""
    write_parquet(labels_frame(list(range(1, len(labels) + 1)), labels, f"{day} 12:00"),
                  landing / day / schema.LABELS_FILE)
    ingest_labels(con, landing, quarantine, day)


# -- check_file_accepted ------------------------------------------------------------------------


def test_file_accepted_fails_when_the_day_was_never_ingested(con: duckdb.DuckDBPyConnection) -> None:
    outcome = quality.check_file_accepted(con, DAY, "events", require_rows=True)
    assert not outcome.passed and "never ingested" in outcome.description


def test_file_accepted_passes_an_ingested_file(con, landing, quarantine) -> None:
    land_events(con, landing, quarantine, DAY, 20)
    outcome = quality.check_file_accepted(con, DAY, "events", require_rows=True)
    assert outcome.passed
    assert outcome.metadata == {"file_status": "ingested", "rows_valid": 20}


def test_a_missing_file_fails_only_where_rows_are_required(con, landing, quarantine) -> None:
    ingest_labels(con, landing, quarantine, DAY)  # nothing landed
    assert not quality.check_file_accepted(con, DAY, "labels", require_rows=True).passed
    outcome = quality.check_file_accepted(con, DAY, "labels", require_rows=False)
    assert outcome.passed and outcome.metadata["file_status"] == "missing"


def test_a_quarantined_file_fails_with_the_reason(con, landing, quarantine) -> None:
    path = landing / DAY / schema.EVENTS_FILE
    path.parent.mkdir(parents=True)
    path.write_bytes(b"PAR1 this is not parquet")
    ingest_events(con, landing, quarantine, DAY)
    outcome = quality.check_file_accepted(con, DAY, "events", require_rows=False)
    assert not outcome.passed and outcome.metadata["file_status"] == "quarantined"
    assert outcome.description.startswith("events file quarantined: ") and len(outcome.description) > 25


def test_a_file_without_one_valid_row_fails_where_rows_are_required(con, landing, quarantine) -> None:
    land_events(con, landing, quarantine, DAY, 5, bad_prices=5)
    outcome = quality.check_file_accepted(con, DAY, "events", require_rows=True)
    assert not outcome.passed and outcome.description == f"no valid events rows for {DAY}"
    assert quality.check_file_accepted(con, DAY, "events", require_rows=False).passed


def test_the_latest_ingest_of_the_day_decides(con, landing, quarantine) -> None:
    land_events(con, landing, quarantine, DAY, 5, bad_prices=5)
    land_events(con, landing, quarantine, DAY, 5)  # redelivered, now readable
    assert quality.check_file_accepted(con, DAY, "events", require_rows=True).passed


# -- check_quarantine_share ---------------------------------------------------------------------


def quarantine_share(con: duckdb.DuckDBPyConnection, max_share: float) -> quality.CheckOutcome:
    return quality.check_quarantine_share(con, DAY, "events", "raw_events", "day", max_share)


def test_quarantine_share_is_allowed_up_to_and_including_the_maximum(con, landing, quarantine) -> None:
    land_events(con, landing, quarantine, DAY, 10, bad_prices=1)  # 1 of 10 rows quarantined
    at_maximum = quarantine_share(con, 0.1)
    assert at_maximum.passed
    assert at_maximum.metadata == {"quarantined": 1, "accepted": 9, "share": 0.1, "threshold": 0.1}
    assert not quarantine_share(con, 0.099).passed


def test_quarantine_share_of_a_day_without_rows_is_zero(con: duckdb.DuckDBPyConnection) -> None:
    outcome = quarantine_share(con, 0.0)
    assert outcome.passed and outcome.metadata["share"] == 0.0


# -- check_unique_ids ---------------------------------------------------------------------------


def test_unique_ids_pass_on_a_clean_day(con, landing, quarantine) -> None:
    land_events(con, landing, quarantine, DAY, 10)
    outcome = quality.check_unique_ids(con, DAY)
    assert outcome.passed and outcome.metadata == {"duplicated_ids": 0}


def test_an_id_also_stored_on_another_day_fails_the_day_that_holds_it(con, landing, quarantine) -> None:
    land_events(con, landing, quarantine, DAY, 10)
    land_events(con, landing, quarantine, "2025-01-11", 10, first_id=11)
    # Ingest would quarantine it; a row written around ingest (a manual fix, a bad backfill) is what this catches.
    con.execute("INSERT INTO raw_events SELECT * REPLACE (DATE '2025-01-11' AS day) FROM raw_events "
                "WHERE event_id = 3")
    for day in (DAY, "2025-01-11"):
        outcome = quality.check_unique_ids(con, day)
        assert not outcome.passed and outcome.metadata == {"duplicated_ids": 1}
    assert quality.check_unique_ids(con, "2025-01-12").passed


# -- check_null_rate ----------------------------------------------------------------------------


def test_null_rate_of_validated_events_is_zero(con, landing, quarantine) -> None:
    land_events(con, landing, quarantine, DAY, 10)
    outcome = quality.check_null_rate(con, DAY)
    assert outcome.passed and outcome.metadata == {"null_rate": 0.0, "threshold": 0.0}


def test_one_null_cell_fails_a_zero_maximum_and_passes_a_maximum_equal_to_its_rate(con, landing,
                                                                                   quarantine) -> None:
    land_events(con, landing, quarantine, DAY, 10)
    con.execute("UPDATE raw_events SET sensor_motion = NULL WHERE event_id = 4")
    rate = 1 / (10 * len(schema.EVENT_COLUMNS))
    failed = quality.check_null_rate(con, DAY)
    assert not failed.passed and failed.metadata["null_rate"] == pytest.approx(rate)
    assert quality.check_null_rate(con, DAY, max_rate=rate).passed
    assert not quality.check_null_rate(con, DAY, max_rate=rate * 0.99).passed


def test_null_rate_of_a_day_without_rows_passes(con: duckdb.DuckDBPyConnection) -> None:
    assert quality.check_null_rate(con, DAY).passed


# -- check_row_count ----------------------------------------------------------------------------


def land_history(con, landing, quarantine, counts: dict[str, int]) -> None:
    first_id = 1
    for day, n in counts.items():
        land_events(con, landing, quarantine, day, n, first_id=first_id)
        first_id += n


def test_row_count_within_the_tolerance_of_the_recent_median_passes_at_the_boundary(con, landing,
                                                                                    quarantine) -> None:
    # Ratios of 1.25 and 0.75 are exact in binary, so the boundary is really tested.
    land_history(con, landing, quarantine, {"2025-01-07": 30, "2025-01-08": 40, "2025-01-09": 50, DAY: 50})
    outcome = quality.check_row_count(con, DAY, tolerance=0.25, min_rows=10)
    assert outcome.passed
    assert outcome.metadata == {"rows": 50, "min_rows": 10, "recent_median": 40.0, "ratio": 1.25}
    assert not quality.check_row_count(con, DAY, tolerance=0.24, min_rows=10).passed


def test_row_count_far_below_the_recent_median_fails(con, landing, quarantine) -> None:
    land_history(con, landing, quarantine, {"2025-01-08": 40, "2025-01-09": 40, DAY: 30})
    assert quality.check_row_count(con, DAY, tolerance=0.25, min_rows=10).passed  # 0.75x: at the boundary
    assert not quality.check_row_count(con, DAY, tolerance=0.24, min_rows=10).passed


def test_row_count_below_the_minimum_fails_even_without_history(con, landing, quarantine) -> None:
    land_events(con, landing, quarantine, DAY, 12)
    at_minimum = quality.check_row_count(con, DAY, tolerance=0.2, min_rows=12)
    assert at_minimum.passed and "no earlier days to compare" in at_minimum.description
    below = quality.check_row_count(con, DAY, tolerance=0.2, min_rows=13)
    assert not below.passed and "below the minimum 13" in below.description


def test_row_count_compares_only_days_within_the_lookback(con, landing, quarantine) -> None:
    # The day exactly `lookback_days` back counts; the one before it (10x larger) does not.
    land_history(con, landing, quarantine, {"2025-01-07": 500, "2025-01-08": 50, DAY: 50})
    outcome = quality.check_row_count(con, DAY, tolerance=0.1, min_rows=10, lookback_days=2)
    assert outcome.passed and outcome.metadata["recent_median"] == 50.0
    assert quality.check_row_count(con, DAY, tolerance=0.1, min_rows=10, lookback_days=3).metadata[
        "recent_median"] == 275.0


# -- check_label_rate ---------------------------------------------------------------------------


def test_label_rate_is_allowed_between_the_bounds_inclusive(con, landing, quarantine) -> None:
    land_events(con, landing, quarantine, "2025-01-09", 10)
    land_labels(con, landing, quarantine, DAY, [1, 1, 0, 0, 0, 0, 0, 0, 0, 0])  # 20% fraud
    outcome = quality.check_label_rate(con, DAY, min_rate=0.2, max_rate=0.2)
    assert outcome.passed and outcome.metadata == {"labels": 10, "label_rate": 0.2}
    assert not quality.check_label_rate(con, DAY, min_rate=0.21, max_rate=0.5).passed
    assert not quality.check_label_rate(con, DAY, min_rate=0.0, max_rate=0.19).passed


def test_label_rate_of_a_day_without_labels_passes(con: duckdb.DuckDBPyConnection) -> None:
    outcome = quality.check_label_rate(con, DAY, min_rate=0.01, max_rate=0.5)
    assert outcome.passed and outcome.metadata == {"labels": 0}


# -- check_features_complete --------------------------------------------------------------------


def test_features_complete_after_building_them(con, landing, quarantine) -> None:
    land_events(con, landing, quarantine, DAY, 10)
    assert not quality.check_features_complete(con, DAY).passed  # events without features
    build_features(con, DAY)
    outcome = quality.check_features_complete(con, DAY)
    assert outcome.passed and outcome.metadata == {"feature_rows": 10, "events": 10, "invalid_rows": 0}


def test_a_nan_or_infinite_feature_fails(con, landing, quarantine) -> None:
    land_events(con, landing, quarantine, DAY, 10)
    build_features(con, DAY)
    numeric = schema.FEATURE_NUMERIC[0]
    con.execute(f"UPDATE features SET {numeric} = 'nan'::DOUBLE WHERE event_id = 2")
    con.execute(f"UPDATE features SET {numeric} = 'inf'::DOUBLE WHERE event_id = 5")
    outcome = quality.check_features_complete(con, DAY)
    assert not outcome.passed and outcome.metadata["invalid_rows"] == 2


def test_features_complete_fails_a_day_without_events(con: duckdb.DuckDBPyConnection) -> None:
    assert not quality.check_features_complete(con, DAY).passed


# -- check_drift_severity -----------------------------------------------------------------------


def store_drift_report(con: duckdb.DuckDBPyConnection, severity: float) -> None:
    ensure_drift_tables(con)
    con.execute("INSERT INTO drift_reports (report_id, partition, reference_id, severity, severity_level, scope, "
                "drifted_features, affected_segments, created_at) "
                "VALUES ('r-1', ?, 'ref-1', ?, 'medium', 'local', ['discount'], ['region=south'], now())",
                [DAY, severity])


def test_drift_severity_must_stay_strictly_below_the_threshold(con: duckdb.DuckDBPyConnection) -> None:
    store_drift_report(con, 0.5)
    below = quality.check_drift_severity(con, DAY, threshold=0.51)
    assert below.passed
    assert below.metadata == {"severity": 0.5, "severity_level": "medium", "scope": "local", "threshold": 0.51}
    assert "['discount']" in below.description and "region=south" in below.description
    assert not quality.check_drift_severity(con, DAY, threshold=0.5).passed


def test_a_day_without_a_drift_report_fails(con: duckdb.DuckDBPyConnection) -> None:
    assert not quality.check_drift_severity(con, DAY, threshold=1.0).passed  # no table yet
    store_drift_report(con, 0.1)
    outcome = quality.check_drift_severity(con, "2025-01-11", threshold=1.0)
    assert not outcome.passed and outcome.description == "no drift report for 2025-01-11"
