"""Complaint-rate alert: is today's complaint rate per order above the recent baseline?

Model: complaints are Poisson with rate proportional to orders (the exposure). For the current
window's count ``k`` over ``n`` orders (``current_days`` days ending on ``day``; by default just
that day) and the baseline window's ``K`` complaints over ``N`` orders, the exact
conditional test uses that, under equal rates, ``k`` given ``k + K`` is
Binomial(k + K, n / (n + N)). The one-sided p-value is P(X >= k). An alert needs the p-value below
``alpha`` **and** a rate ratio (current rate / baseline rate) of at least ``min_rate_ratio``, so a
statistically clear but tiny rise on a huge day does not page anyone.

The baseline is the ``baseline_days`` days before the current window that are present in the
history; with fewer than ``min_baseline_days`` of them (or no baseline orders) the status is
``insufficient_baseline`` and no alert is raised.

Power: a 1.4x rise on ~20 complaints a day (2k orders) gives p ~ 0.05 on one day; pooling
``current_days=3`` gives p ~ 0.002. With 10k orders a day, one day suffices.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from ct_assets.core.data import schema

if TYPE_CHECKING:
    import pandas as pd


@dataclass(frozen=True)
class ComplaintConfig:
    baseline_days: int = 14
    min_baseline_days: int = 3
    current_days: int = 1
    alpha: float = 0.01
    min_rate_ratio: float = 1.25

    def __post_init__(self) -> None:
        if self.current_days < 1:
            raise ValueError(f"current_days must be at least 1, got {self.current_days}")
        if self.baseline_days < 1 or not 1 <= self.min_baseline_days <= self.baseline_days:
            raise ValueError("need baseline_days >= 1 and 1 <= min_baseline_days <= baseline_days")
        if not 0.0 < self.alpha < 1.0:
            raise ValueError(f"alpha must be in (0, 1), got {self.alpha}")
        if self.min_rate_ratio < 1.0:
            raise ValueError(f"min_rate_ratio must be >= 1, got {self.min_rate_ratio}")


@dataclass(frozen=True)
class ComplaintTestResult:
    """The current window's complaint rate against the baseline, with the test outcome."""

    day: dt.date  # last day of the current window
    current_days: int  # days of the current window present in the history
    orders: int
    complaints: int
    baseline_days: int
    baseline_orders: int
    baseline_complaints: int
    rate: float
    baseline_rate: float
    rate_ratio: float  # inf when the baseline had no complaint and the current window has some
    p_value: float
    alert: bool
    status: str  # "alert" | "normal" | "insufficient_baseline"

    def to_summary(self) -> dict[str, Any]:
        """Flat JSON-able dict for asset metadata (non-finite numbers become -1.0)."""
        summary = asdict(self)
        summary["day"] = self.day.isoformat()
        for key, value in summary.items():
            if isinstance(value, float):
                summary[key] = round(value, 6) if np.isfinite(value) else -1.0
        return summary


def _as_date(value: Any) -> dt.date:
    import pandas as pd
    try:
        return pd.Timestamp(value).date()
    except (TypeError, ValueError) as error:
        raise ValueError(f"not a date: {value!r}") from error


def evaluate_complaint_rate(
    history: pd.DataFrame, day: Any, config: ComplaintConfig | None = None
) -> ComplaintTestResult:
    """Test the complaint count of ``day`` (and the ``current_days - 1`` days before it) against
    the preceding baseline days in ``history``.

    ``history`` has the columns of ``schema.COMPLAINT_COLUMNS`` (day, orders, complaints), one row
    per day, and must contain ``day``.

    >>> import pandas as pd
    >>> history = pd.DataFrame({"day": ["2024-01-01", "2024-01-02", "2024-01-03", "2024-01-04"],
    ...                         "orders": [1000, 1000, 1000, 1000], "complaints": [10, 12, 9, 40]})
    >>> evaluate_complaint_rate(history, "2024-01-04").alert
    True
    """
    from scipy.stats import binom

    config = config or ComplaintConfig()
    missing = [c for c in schema.COMPLAINT_COLUMNS if c not in history.columns]
    if missing:
        raise ValueError(f"complaint history lacks columns {missing}")
    frame = history.loc[:, list(schema.COMPLAINT_COLUMNS)].copy()
    frame["day"] = [_as_date(value) for value in frame["day"]]
    if frame["day"].duplicated().any():
        duplicated = sorted(set(frame["day"][frame["day"].duplicated()]))
        raise ValueError(f"complaint history has duplicated days: {duplicated}")
    if frame[["orders", "complaints"]].isna().any().any() or (frame[["orders", "complaints"]] < 0).any().any():
        raise ValueError("orders and complaints must be non-negative counts")
    target_day = _as_date(day)
    today = frame[frame["day"] == target_day]
    if today.empty:
        raise ValueError(f"day {target_day} is not in the complaint history")
    window_start = target_day - dt.timedelta(days=config.current_days - 1)
    window = frame[(frame["day"] >= window_start) & (frame["day"] <= target_day)]
    orders, complaints = int(window["orders"].sum()), int(window["complaints"].sum())
    if orders <= 0:
        raise ValueError(f"no orders in the window ending {target_day}; a complaint rate needs exposure")

    baseline = frame[frame["day"] < window_start].sort_values("day").tail(config.baseline_days)
    baseline_orders, baseline_complaints = int(baseline["orders"].sum()), int(baseline["complaints"].sum())
    rate = complaints / orders
    common = dict(day=target_day, current_days=len(window), orders=orders, complaints=complaints,
                  baseline_days=len(baseline), baseline_orders=baseline_orders,
                  baseline_complaints=baseline_complaints, rate=rate)
    if len(baseline) < config.min_baseline_days or baseline_orders <= 0:
        return ComplaintTestResult(**common, baseline_rate=float("nan"), rate_ratio=float("nan"),
                                   p_value=float("nan"), alert=False, status="insufficient_baseline")

    baseline_rate = baseline_complaints / baseline_orders
    if baseline_rate > 0:
        rate_ratio = rate / baseline_rate
    else:
        rate_ratio = float("inf") if complaints > 0 else 1.0
    p_value = float(binom.sf(complaints - 1, complaints + baseline_complaints, orders / (orders + baseline_orders)))
    alert = p_value < config.alpha and rate_ratio >= config.min_rate_ratio
    return ComplaintTestResult(**common, baseline_rate=baseline_rate, rate_ratio=rate_ratio, p_value=p_value,
                               alert=alert, status="alert" if alert else "normal")
