"""Small helpers the core modules share: table existence, ISO days, naive UTC timestamps, atomic PNG files."""

from __future__ import annotations

import os
import re
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any

import duckdb

_ISO_DAY = re.compile(r"\d{4}-\d{2}-\d{2}")  # date.fromisoformat also takes 20250302 and 2025-W10-1


def has_table(con: duckdb.DuckDBPyConnection, table: str) -> bool:
    """True if ``table`` exists; readers check instead of creating it, so read-only connections work."""
    return bool(con.execute("SELECT count(*) FROM duckdb_tables() WHERE table_name = ? "
                            "AND schema_name = current_schema()", [table]).fetchall()[0][0])


def parse_iso_day(day: str, what: str = "day") -> date:
    """Exactly ``YYYY-MM-DD`` as a date (no other ISO form); a ValueError naming ``what`` otherwise.

    >>> parse_iso_day("2025-03-02")
    datetime.date(2025, 3, 2)
    """
    if not isinstance(day, str) or not _ISO_DAY.fullmatch(day):
        raise ValueError(f"{what} must look like YYYY-MM-DD (an ISO date), got {day!r}")
    try:
        return date.fromisoformat(day)
    except ValueError as exc:
        raise ValueError(f"{what} {day!r} is not a calendar date: {exc}") from None


def utc_now() -> datetime:
    """Now in UTC, without tzinfo (DuckDB TIMESTAMP columns are naive)."""
    return datetime.now(timezone.utc).replace(tzinfo=None)


def save_png(figure: Any, path: Path) -> Path:
    """Write a matplotlib ``figure`` to ``path`` as PNG through a temporary file and a rename, so a reader
    (the UI, a browser) never sees half a picture."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp")
    figure.savefig(temporary, format="png", dpi=90)
    os.replace(temporary, path)
    return path
