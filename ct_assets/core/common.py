"""Small helpers the warehouse modules share: table existence, ISO days, naive UTC timestamps."""

from __future__ import annotations

from datetime import date, datetime, timezone

import duckdb


def has_table(con: duckdb.DuckDBPyConnection, table: str) -> bool:
    """True if ``table`` exists; readers check instead of creating it, so read-only connections work."""
    return bool(con.execute("SELECT count(*) FROM duckdb_tables() WHERE table_name = ? "
                            "AND schema_name = current_schema()", [table]).fetchall()[0][0])


def parse_iso_day(day: str) -> date:
    """``YYYY-MM-DD`` as a date; a clear ValueError for anything else."""
    try:
        return date.fromisoformat(day)
    except (TypeError, ValueError):
        raise ValueError(f"day must be an ISO date YYYY-MM-DD, got {day!r}") from None


def utc_now() -> datetime:
    """Now in UTC, without tzinfo (DuckDB TIMESTAMP columns are naive)."""
    return datetime.now(timezone.utc).replace(tzinfo=None)
