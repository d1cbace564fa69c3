"""Complaint-rate alert: exact Poisson rate test with orders as exposure."""

from __future__ import annotations

import datetime as dt
import json

import numpy as np
import pandas as pd
import pytest

from ct_assets.core.monitoring.complaints import ComplaintConfig, evaluate_complaint_rate

RATE = 0.004  # complaints per order on a normal day


def history(last_day_orders: int, last_day_complaints: int, baseline_days: int = 14,
            orders_per_day: int = 5_000) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    days = [dt.date(2025, 3, 1) + dt.timedelta(days=i) for i in range(baseline_days + 1)]
    orders = rng.integers(int(orders_per_day * 0.8), int(orders_per_day * 1.2), size=baseline_days + 1)
    complaints = rng.poisson(RATE * orders)
    orders[-1], complaints[-1] = last_day_orders, last_day_complaints
    return pd.DataFrame({"day": days, "orders": orders, "complaints": complaints})


def test_complaint_spike_raises_an_alert() -> None:
    frame = history(5_000, 45)  # 0.009 per order, more than twice the baseline
    result = evaluate_complaint_rate(frame, frame["day"].iloc[-1])
    assert result.alert and result.status == "alert"
    assert result.rate_ratio > 2.0
    assert result.p_value < 1e-4
    assert result.baseline_days == 14
    assert result.baseline_orders == int(frame["orders"].iloc[:-1].sum())


def test_normal_day_and_busier_day_raise_nothing() -> None:
    normal = history(5_000, 21)
    assert evaluate_complaint_rate(normal, normal["day"].iloc[-1]).status == "normal"
    # Twice the orders, twice the complaints: same rate, exposure accounted for.
    busy = history(10_000, 40)
    result = evaluate_complaint_rate(busy, busy["day"].iloc[-1])
    assert not result.alert and 0.7 < result.rate_ratio < 1.3


def test_significant_but_small_rise_does_not_alert() -> None:
    # Rate 0.0048 on huge days: clearly significant, but only ~1.2x the baseline.
    frame = history(400_000, 1_920, orders_per_day=400_000)
    result = evaluate_complaint_rate(frame, frame["day"].iloc[-1])
    assert result.p_value < 0.01 and result.rate_ratio < 1.5
    assert not result.alert


def test_p_value_equals_scipy_conditional_binomial_test() -> None:
    from scipy.stats import binomtest

    frame = history(5_000, 30)
    result = evaluate_complaint_rate(frame, frame["day"].iloc[-1])
    total = result.complaints + result.baseline_complaints
    share = result.orders / (result.orders + result.baseline_orders)
    expected = binomtest(result.complaints, total, share, alternative="greater").pvalue
    assert result.p_value == pytest.approx(expected, rel=1e-9)


def test_baseline_uses_only_earlier_days_up_to_the_window() -> None:
    frame = history(5_000, 20, baseline_days=20)
    later = pd.DataFrame({"day": [dt.date(2025, 4, 1)], "orders": [5_000], "complaints": [500]})
    result = evaluate_complaint_rate(pd.concat([frame, later]), str(frame["day"].iloc[-1]),
                                     ComplaintConfig(baseline_days=7))
    assert result.baseline_days == 7
    assert result.baseline_orders == int(frame["orders"].iloc[-8:-1].sum())


def test_pooled_current_window_detects_a_moderate_sustained_rise() -> None:
    # Three days at ~1.6x the baseline rate on small days: no single day is conclusive, the pool is.
    frame = history(2_000, 13, baseline_days=16, orders_per_day=2_000)
    frame.loc[frame.index[-3:], ["orders", "complaints"]] = [[2_000, 13], [2_000, 13], [2_000, 13]]
    single = evaluate_complaint_rate(frame, frame["day"].iloc[-1])
    pooled = evaluate_complaint_rate(frame, frame["day"].iloc[-1], ComplaintConfig(current_days=3))
    assert not single.alert
    assert pooled.alert and pooled.current_days == 3 and pooled.orders == 6_000 and pooled.complaints == 39
    assert pooled.baseline_days == 14  # the baseline ends before the pooled window


def test_short_history_is_insufficient_not_an_alert() -> None:
    frame = history(5_000, 100, baseline_days=2)
    result = evaluate_complaint_rate(frame, frame["day"].iloc[-1])
    assert result.status == "insufficient_baseline" and not result.alert
    json.dumps(result.to_summary(), allow_nan=False)


def test_bad_inputs_are_rejected() -> None:
    frame = history(5_000, 20)
    with pytest.raises(ValueError, match="lacks columns"):
        evaluate_complaint_rate(frame.drop(columns=["orders"]), frame["day"].iloc[-1])
    with pytest.raises(ValueError, match="duplicated"):
        evaluate_complaint_rate(pd.concat([frame, frame.iloc[[0]]]), frame["day"].iloc[-1])
    with pytest.raises(ValueError, match="not in the complaint history"):
        evaluate_complaint_rate(frame, "2030-01-01")
    with pytest.raises(ValueError, match="non-negative"):
        evaluate_complaint_rate(frame.assign(complaints=-1), frame["day"].iloc[-1])
    with pytest.raises(ValueError, match="min_rate_ratio"):
        ComplaintConfig(min_rate_ratio=0.5)
