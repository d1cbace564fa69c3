"""When to build a candidate: drift breaches, a stale production model, or the very first model.

Pure function over small summaries (drift report metadata, the production model's data window,
label counts) so the sensor that calls it never touches raw data.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date


@dataclass(frozen=True)
class TriggerThresholds:
    drift_severity: float  # a drift report at or above this severity asks for a candidate
    max_model_age_days: int  # days between the model's newest training day and the newest landed day
    min_training_rows: int  # labelled rows needed before the first model is worth training
    retry_days: int = 3  # after a candidate attempt, wait this many landed days before asking again


@dataclass(frozen=True)
class Trigger:
    kind: str  # "drift" | "staleness" | "bootstrap"
    run_key: str  # idempotency: one run per key, however often the sensor re-evaluates
    reason: str
    window_end: str
    drift_report_id: str | None = None


def _days_between(start: str, end: str) -> int:
    return (date.fromisoformat(end) - date.fromisoformat(start)).days


def _recently_attempted(last_candidate: Mapping[str, object] | None, latest_day: str, retry_days: int) -> bool:
    window = str((last_candidate or {}).get("data_window", ""))
    if ".." not in window:
        return False
    return _days_between(window.split("..")[1], latest_day) < retry_days


def find_triggers(drift_reports: Sequence[tuple[str, Mapping[str, object]]],
                  production: Mapping[str, object] | None,
                  last_candidate: Mapping[str, object] | None,
                  latest_day: str | None, labelled_rows: int,
                  thresholds: TriggerThresholds) -> list[Trigger]:
    """The candidate runs to request now (at most one).

    ``drift_reports`` are the (partition, metadata) of drift reports new since the last call;
    ``production`` / ``last_candidate`` the latest metadata of those assets (None if never built).
    """
    if latest_day is None:
        return []
    if production is None:
        if labelled_rows < thresholds.min_training_rows:
            return []
        if _recently_attempted(last_candidate, latest_day, thresholds.retry_days):
            return []
        return [Trigger("bootstrap", f"bootstrap:{latest_day}",
                        f"no production model yet and {labelled_rows} labelled rows "
                        f"(>= {thresholds.min_training_rows})", latest_day)]
    breaches = [(day, meta) for day, meta in drift_reports
                if float(meta.get("severity", 0.0) or 0.0) >= thresholds.drift_severity]
    if breaches:
        day, meta = max(breaches, key=lambda item: item[0])
        severity = float(meta.get("severity", 0.0) or 0.0)
        reason = (f"drift report {day}: severity {severity:.2f} >= {thresholds.drift_severity} "
                  f"({meta.get('scope', '?')} scope; top features {meta.get('top_features', [])})")
        report_id = str(meta.get("report_id")) if meta.get("report_id") else None
        return [Trigger("drift", f"drift:{day}", reason, day, report_id)]
    window_end = str(production.get("data_window_end", ""))
    if window_end and window_end != "None":
        age = _days_between(window_end, latest_day)
        if age > thresholds.max_model_age_days and not _recently_attempted(
                last_candidate, latest_day, thresholds.retry_days):
            return [Trigger("staleness", f"staleness:{production.get('model_id')}:{latest_day}",
                            f"production model {production.get('model_id')} is {age} days old "
                            f"(> {thresholds.max_model_age_days})", latest_day)]
    return []
