import numpy as np
import pandas as pd
import pytest

from ct_assets.core.data.validation import (
    UnusableFile,
    validate_complaints,
    validate_events,
    validate_labels,
)
from ct_assets_tests.builders import events_frame, labels_frame

DAY = "2025-01-03"


def test_valid_events_pass_with_schema_types():
    result = validate_events(events_frame(DAY, 50), DAY)
    assert result.n_valid == 50 and result.n_quarantined == 0
    assert result.valid["event_id"].dtype == "int64"
    assert result.valid["quantity"].dtype == "int64"
    assert result.valid["price"].dtype == "float64"


def test_missing_column_makes_the_file_unusable():
    with pytest.raises(UnusableFile, match="missing required columns \\['price'\\]"):
        validate_events(events_frame(DAY, 5).drop(columns=["price"]), DAY)


def test_extra_columns_are_reported_not_silently_kept():
    result = validate_events(events_frame(DAY, 5).assign(debug_flag=1), DAY)
    assert result.n_valid == 5
    assert result.warnings == ("events: extra columns ignored: ['debug_flag']",)
    assert "debug_flag" not in result.valid.columns


@pytest.mark.parametrize("column, value, reason", [
    ("price", -3.0, "price: failed in_range"),
    ("price", float("nan"), "price: missing value"),
    ("price", float("inf"), "price: not finite"),
    ("price", "cheap", "price: not a number"),
    ("discount", 1.5, "discount: failed in_range"),
    ("quantity", 2.5, "quantity: not an integer"),
    ("region", "atlantis", "region: failed isin"),
    ("region", None, "region: not text"),
    ("query_term", "x" * 65, "query_term: failed str_length"),
    ("event_ts", "not a time", "event_ts: not a timestamp"),
    ("event_ts", "2025-01-09 10:00:00", "event_ts: not on the landing day"),
    ("protected_group", "group_z", "protected_group: failed isin"),
])
def test_bad_values_are_quarantined_with_reason_and_good_rows_kept(column, value, reason):
    frame = events_frame(DAY, 10).astype({column: object})
    frame.loc[3, column] = value
    result = validate_events(frame, DAY)
    assert result.n_valid == 9
    assert result.valid["event_id"].tolist() == [1, 2, 3, 5, 6, 7, 8, 9, 10]
    assert list(result.quarantined["row_id"]) == ["4"]
    assert reason in result.quarantined["reasons"].iloc[0]


def test_sql_looking_category_is_data_not_code():
    frame = events_frame(DAY, 3)
    frame.loc[0, "query_term"] = "'); DROP TABLE raw_events; --"
    result = validate_events(frame, DAY)
    assert result.n_valid == 3
    assert result.valid["query_term"].iloc[0] == "'); DROP TABLE raw_events; --"


def test_duplicate_ids_keep_the_first_and_quarantine_the_rest():
    frame = events_frame(DAY, 6)
    frame.loc[4, "event_id"] = 2
    frame.loc[5, "event_id"] = 2
    result = validate_events(frame, DAY)
    assert result.valid["event_id"].tolist() == [1, 2, 3, 4]
    assert result.n_quarantined == 2
    assert all("duplicate id within file" in r for r in result.quarantined["reasons"])


def test_empty_file_is_valid_and_empty():
    result = validate_events(events_frame(DAY, 0), DAY)
    assert result.n_valid == 0 and result.n_quarantined == 0


def test_conflicting_duplicate_labels_are_all_quarantined():
    frame = labels_frame([1, 2, 2, 3, 3], [0, 1, 0, 1, 1], "2025-01-04")
    result = validate_labels(frame)
    assert result.valid["event_id"].tolist() == [1, 3]
    reasons = result.quarantined.set_index("row_id")["reasons"]
    assert reasons.loc["2"].str.contains("conflicting labels").all()
    assert "duplicate id within file" in reasons.loc["3"]


def test_label_values_must_be_binary():
    result = validate_labels(labels_frame([1, 2], [1, 2], "2025-01-04"))
    assert result.valid["event_id"].tolist() == [1]
    assert "is_fraud: failed isin" in result.quarantined["reasons"].iloc[0]


def test_complaints_negative_and_wrong_day():
    frame = pd.DataFrame({"day": [pd.Timestamp(DAY), pd.Timestamp("2025-01-02")], "orders": [100, 100],
                          "complaints": [-1, 3]})
    result = validate_complaints(frame, DAY)
    assert result.n_valid == 0
    reasons = " ".join(result.quarantined["reasons"])
    assert "complaints: negative count" in reasons and "day: not the landing day" in reasons


def test_complaints_single_valid_row():
    frame = pd.DataFrame({"day": [pd.Timestamp(DAY)], "orders": [np.int64(100)], "complaints": [np.int64(4)]})
    result = validate_complaints(frame, DAY)
    assert result.valid.to_dict("records") == [{"day": pd.Timestamp(DAY), "orders": 100, "complaints": 4}]
