"""Data-quality checks over the warehouse tables for one day, as plain results.

The Dagster shell turns each :class:`CheckOutcome` into an asset check result; the thresholds
come from the caller so they live in one settings object.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import duckdb

from ct_assets.core.common import has_table
from ct_assets.core.data import schema
from ct_assets.core.data.features import ensure_features_table
from ct_assets.core.data.ingest import ensure_ingest_tables


@dataclass(frozen=True)
class CheckOutcome:
    passed: bool
    description: str
    metadata: dict[str, float | int | str] = field(default_factory=dict)


def _scalar(con: duckdb.DuckDBPyConnection, sql: str, params: list[object]) -> float:
    value = con.execute(sql, params).fetchall()[0][0]
    return float(value or 0)


def check_file_accepted(con: duckdb.DuckDBPyConnection, day: str, source: str,
                        require_rows: bool) -> CheckOutcome:
    """The latest ingest of the day's ``source`` file found it readable with the required columns."""
    ensure_ingest_tables(con)
    latest = con.execute(
        "SELECT file_status, rows_valid, warnings FROM ingest_log WHERE day = ? AND source = ? "
        "ORDER BY logged_at DESC LIMIT 1", [day, source]).fetchall()
    if not latest:
        return CheckOutcome(False, f"{source} for {day} was never ingested")
    status, rows, warnings = latest[0]
    metadata: dict[str, float | int | str] = {"file_status": status, "rows_valid": int(rows)}
    if status == "quarantined":
        issue = con.execute("SELECT reason FROM file_issues WHERE day = ? AND source = ? ORDER BY logged_at DESC LIMIT 1",
                            [day, source]).fetchall()
        return CheckOutcome(False, f"{source} file quarantined: {issue[0][0] if issue else warnings}", metadata)
    if status == "missing" and require_rows:
        return CheckOutcome(False, f"{source} file missing for {day}", metadata)
    if require_rows and rows == 0:
        return CheckOutcome(False, f"no valid {source} rows for {day}", metadata)
    return CheckOutcome(True, f"{source} file {status} with {int(rows)} valid rows", metadata)


def check_quarantine_share(con: duckdb.DuckDBPyConnection, day: str, source: str,
                           table: str, day_column: str, max_share: float) -> CheckOutcome:
    """Quarantined rows are at most ``max_share`` of the rows delivered for the day."""
    ensure_ingest_tables(con)
    good = _scalar(con, f"SELECT count(*) FROM {table} WHERE {day_column} = ?", [day])
    bad = _scalar(con, "SELECT count(*) FROM quarantine WHERE day = ? AND source = ?", [day, source])
    share = bad / (good + bad) if good + bad else 0.0
    return CheckOutcome(share <= max_share,
                        f"{share:.2%} of {source} rows quarantined (max {max_share:.2%})",
                        {"quarantined": int(bad), "accepted": int(good), "share": round(share, 4),
                         "threshold": max_share})


def check_unique_ids(con: duckdb.DuckDBPyConnection, day: str) -> CheckOutcome:
    """No event id appears twice in raw_events (within the day or against other days)."""
    ensure_ingest_tables(con)
    dupes = _scalar(con, "SELECT count(*) FROM (SELECT event_id FROM raw_events WHERE event_id IN "
                    "(SELECT event_id FROM raw_events WHERE day = ?) GROUP BY event_id HAVING count(*) > 1)", [day])
    return CheckOutcome(dupes == 0, f"{int(dupes)} duplicated event ids", {"duplicated_ids": int(dupes)})


def check_null_rate(con: duckdb.DuckDBPyConnection, day: str, max_rate: float = 0.0) -> CheckOutcome:
    """Required event columns carry no nulls after validation."""
    ensure_ingest_tables(con)
    columns = [c for c in schema.EVENT_COLUMNS]
    nulls = " + ".join(f"count(*) - count({c})" for c in columns)
    total = _scalar(con, "SELECT count(*) FROM raw_events WHERE day = ?", [day])
    null_cells = _scalar(con, f"SELECT {nulls} FROM raw_events WHERE day = ?", [day])
    rate = null_cells / (total * len(columns)) if total else 0.0
    return CheckOutcome(rate <= max_rate, f"null rate {rate:.4%} (max {max_rate:.4%})",
                        {"null_rate": rate, "threshold": max_rate})


def check_row_count(con: duckdb.DuckDBPyConnection, day: str, tolerance: float,
                    min_rows: int, lookback_days: int = 7) -> CheckOutcome:
    """Today's row count is at least ``min_rows`` and within +-tolerance of the recent median."""
    ensure_ingest_tables(con)
    today = _scalar(con, "SELECT count(*) FROM raw_events WHERE day = ?", [day])
    median = con.execute(
        "SELECT median(n) FROM (SELECT day, count(*) AS n FROM raw_events WHERE day < CAST(? AS DATE) "
        "AND day >= CAST(? AS DATE) - CAST(? AS INTEGER) GROUP BY day)", [day, day, lookback_days]).fetchall()[0][0]
    metadata: dict[str, float | int | str] = {"rows": int(today), "min_rows": min_rows}
    if today < min_rows:
        return CheckOutcome(False, f"{int(today)} rows, below the minimum {min_rows}", metadata)
    if median is None:
        return CheckOutcome(True, f"{int(today)} rows (no earlier days to compare)", metadata)
    ratio = today / float(median)
    metadata.update({"recent_median": float(median), "ratio": round(ratio, 3)})
    ok = abs(ratio - 1.0) <= tolerance
    return CheckOutcome(ok, f"{int(today)} rows = {ratio:.2f}x the recent median (tolerance +-{tolerance:.0%})",
                        metadata)


def check_label_rate(con: duckdb.DuckDBPyConnection, day: str, min_rate: float, max_rate: float) -> CheckOutcome:
    """The positive rate of the labels that arrived on ``day`` is plausible."""
    ensure_ingest_tables(con)
    n, positives = con.execute("SELECT count(*), coalesce(sum(is_fraud), 0) FROM labels WHERE arrival_day = ?",
                               [day]).fetchall()[0]
    if n == 0:
        return CheckOutcome(True, "no labels arrived", {"labels": 0})
    rate = positives / n
    return CheckOutcome(min_rate <= rate <= max_rate,
                        f"label rate {rate:.2%} (allowed {min_rate:.0%}..{max_rate:.0%})",
                        {"labels": int(n), "label_rate": round(rate, 4)})


def check_features_complete(con: duckdb.DuckDBPyConnection, day: str) -> CheckOutcome:
    """Every ingested event has a features row and no numeric feature is NaN or null."""
    ensure_ingest_tables(con)
    ensure_features_table(con)
    events = _scalar(con, "SELECT count(*) FROM raw_events WHERE day = ?", [day])
    rows = _scalar(con, "SELECT count(*) FROM features WHERE day = ?", [day])
    bad = " OR ".join(f"{c} IS NULL OR isnan({c}) OR isinf({c})" for c in schema.FEATURE_NUMERIC)
    invalid = _scalar(con, f"SELECT count(*) FROM features WHERE day = ? AND ({bad})", [day])
    ok = rows == events and invalid == 0 and rows > 0
    return CheckOutcome(ok, f"{int(rows)} feature rows for {int(events)} events, {int(invalid)} with invalid values",
                        {"feature_rows": int(rows), "events": int(events), "invalid_rows": int(invalid)})


def check_drift_severity(con: duckdb.DuckDBPyConnection, day: str, threshold: float) -> CheckOutcome:
    """The day's drift report severity stays below ``threshold`` (what changed and where in the text)."""
    rows = con.execute(
        "SELECT severity, severity_level, scope, drifted_features, affected_segments FROM drift_reports "
        "WHERE partition = ?", [day]).fetchall() if has_table(con, "drift_reports") else []
    if not rows:
        return CheckOutcome(False, f"no drift report for {day}")
    severity, level, scope, features, segments = rows[0]
    metadata: dict[str, float | int | str] = {"severity": round(float(severity), 4), "severity_level": level,
                                              "scope": scope, "threshold": threshold}
    text = (f"severity {severity:.2f} ({level}), scope {scope}; drifted {list(features or [])} "
            f"in {list(segments or [])[:5]}")
    return CheckOutcome(float(severity) < threshold, text, metadata)
