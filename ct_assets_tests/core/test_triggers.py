import pytest

from ct_assets.core.triggers import TriggerThresholds, find_triggers

T = TriggerThresholds(drift_severity=0.5, max_model_age_days=14, min_training_rows=1000, retry_days=3)
PROD = {"model_id": "m-1", "data_window_end": "2025-01-10"}


def test_no_landed_day_no_trigger():
    assert find_triggers([], None, None, None, 10_000, T) == []


@pytest.mark.parametrize("rows, expected", [(999, []), (1000, ["bootstrap:2025-01-08"])])
def test_bootstrap_waits_for_enough_labels(rows, expected):
    assert [t.run_key for t in find_triggers([], None, None, "2025-01-08", rows, T)] == expected


def test_bootstrap_not_repeated_right_after_an_attempt():
    last = {"data_window": "2025-01-01..2025-01-07"}
    assert find_triggers([], None, last, "2025-01-08", 5000, T) == []
    assert [t.kind for t in find_triggers([], None, last, "2025-01-10", 5000, T)] == ["bootstrap"]


def test_drift_breach_requests_one_run_for_the_newest_breaching_day():
    reports = [("2025-01-11", {"severity": 0.7, "scope": "global", "top_features": ["sensor_motion"],
                               "report_id": "dr-11"}),
               ("2025-01-12", {"severity": 0.2}),
               ("2025-01-13", {"severity": 0.5, "scope": "local", "report_id": "dr-13"})]
    (trigger,) = find_triggers(reports, PROD, None, "2025-01-13", 5000, T)
    assert (trigger.kind, trigger.run_key, trigger.window_end, trigger.drift_report_id) == \
        ("drift", "drift:2025-01-13", "2025-01-13", "dr-13")
    assert "severity 0.50 >= 0.5" in trigger.reason and "local scope" in trigger.reason


def test_below_threshold_drift_and_fresh_model_do_nothing():
    assert find_triggers([("2025-01-11", {"severity": 0.49})], PROD, None, "2025-01-11", 5000, T) == []


def test_staleness_after_max_age():
    assert find_triggers([], PROD, None, "2025-01-24", 5000, T) == []
    (trigger,) = find_triggers([], PROD, None, "2025-01-25", 5000, T)
    assert trigger.run_key == "staleness:m-1:2025-01-25"
    assert "15 days old (> 14)" in trigger.reason
    assert find_triggers([], PROD, {"data_window": "2025-01-11..2025-01-24"}, "2025-01-25", 5000, T) == []
