"""Landing zone -> DuckDB: one day's events, labels and complaints, validated and idempotent.

Each ingest replaces the day's rows in one transaction (delete + insert), so re-running a day
never duplicates rows and a crash never leaves half a day. Bad rows go to ``quarantine`` with
their reasons; an unreadable file is moved to ``<quarantine_dir>/<day>/`` and logged in
``file_issues``. Values are always bound as parameters, never formatted into SQL.
"""

from __future__ import annotations

import json
import re
import shutil
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timezone
from pathlib import Path

import duckdb
import pandas as pd

from ct_assets.core import schema
from ct_assets.core.validation import (
    UnusableFile,
    ValidationResult,
    validate_complaints,
    validate_events,
    validate_labels,
)

DAY_PATTERN = re.compile(r"^\d{4}-\d{2}-\d{2}$")

_EVENT_COLUMN_TYPES = {
    schema.ID_COLUMN: "BIGINT", schema.TIME_COLUMN: "TIMESTAMP",
    **{c: "VARCHAR" for c in schema.CATEGORICAL_COLUMNS},
    **{c.name: ("BIGINT" if c.dtype == "int" else "DOUBLE") for c in schema.NUMERIC_COLUMNS},
    schema.GROUP_COLUMN: "VARCHAR",
}

INGEST_DDL = (
    "CREATE TABLE IF NOT EXISTS raw_events (day DATE NOT NULL, "
    + ", ".join(f"{name} {sql_type}" for name, sql_type in _EVENT_COLUMN_TYPES.items())
    + ", ingested_at TIMESTAMP)",
    """CREATE TABLE IF NOT EXISTS labels (arrival_day DATE NOT NULL, event_id BIGINT, is_fraud INTEGER,
        labelled_at TIMESTAMP, event_day DATE, ingested_at TIMESTAMP)""",
    """CREATE TABLE IF NOT EXISTS complaints (day DATE NOT NULL, orders BIGINT, complaints BIGINT,
        ingested_at TIMESTAMP)""",
    """CREATE TABLE IF NOT EXISTS quarantine (day DATE, source VARCHAR, source_file VARCHAR,
        row_id VARCHAR, reasons VARCHAR, row_json VARCHAR, quarantined_at TIMESTAMP)""",
    """CREATE TABLE IF NOT EXISTS file_issues (day DATE, source VARCHAR, source_file VARCHAR,
        action VARCHAR, reason VARCHAR, moved_to VARCHAR, logged_at TIMESTAMP)""",
    """CREATE TABLE IF NOT EXISTS ingest_log (day DATE, source VARCHAR, file_status VARCHAR,
        rows_read BIGINT, rows_valid BIGINT, rows_quarantined BIGINT, warnings VARCHAR, logged_at TIMESTAMP)""",
)


@dataclass(frozen=True)
class IngestReport:
    """What one ingest of one source for one day did."""

    day: str
    source: str
    file_status: str  # "ingested" | "missing" | "quarantined"
    rows_read: int
    rows_valid: int
    rows_quarantined: int
    warnings: tuple[str, ...]
    top_reasons: tuple[tuple[str, int], ...]

    def to_metadata(self) -> dict[str, object]:
        return {
            "day": self.day, "file_status": self.file_status, "rows_read": self.rows_read,
            "rows_valid": self.rows_valid, "rows_quarantined": self.rows_quarantined,
            "warnings": list(self.warnings),
            "top_quarantine_reasons": {reason: count for reason, count in self.top_reasons},
        }


def ensure_ingest_tables(con: duckdb.DuckDBPyConnection) -> None:
    for statement in INGEST_DDL:
        con.execute(statement)


def parse_day(day: str) -> date:
    """The landing day folder name as a date; a clear error for anything else."""
    if not DAY_PATTERN.match(day):
        raise ValueError(f"landing day must look like YYYY-MM-DD, got {day!r}")
    try:
        return date.fromisoformat(day)
    except ValueError as exc:
        raise ValueError(f"landing day {day!r} is not a calendar date: {exc}") from exc


def list_landed_days(landing_dir: Path) -> list[str]:
    """Complete day folders in the landing zone, oldest first.

    Dot-prefixed folders are still being written; symlinks and names that are not dates are
    ignored (they are not days an upstream delivered).
    """
    if not landing_dir.is_dir():
        return []
    days = []
    for entry in landing_dir.iterdir():
        if entry.name.startswith(".") or entry.is_symlink() or not entry.is_dir():
            continue
        try:
            parse_day(entry.name)
        except ValueError:
            continue
        days.append(entry.name)
    return sorted(days)


def _landing_file(landing_dir: Path, day: str, file_name: str) -> Path:
    parse_day(day)
    path = (landing_dir / day / file_name)
    if path.is_symlink():
        raise UnusableFile(f"{path.name}: is a symlink; landing files must be regular files")
    return path


def read_parquet_file(path: Path) -> pd.DataFrame:
    """Read a Parquet file with DuckDB; any failure is an :class:`UnusableFile`."""
    try:
        with duckdb.connect() as con:
            return con.execute("SELECT * FROM read_parquet(?)", [str(path)]).fetchdf()
    except duckdb.Error as exc:
        raise UnusableFile(f"{path.name}: unreadable Parquet ({type(exc).__name__}: {exc})") from exc


def _quarantine_file(con: duckdb.DuckDBPyConnection, path: Path, quarantine_dir: Path, day: str,
                     source: str, reason: str) -> None:
    target_dir = quarantine_dir / day
    target_dir.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%f")
    target = target_dir / f"{stamp}-{path.name}"
    shutil.move(str(path), target)
    target.with_suffix(target.suffix + ".reason.json").write_text(
        json.dumps({"day": day, "source": source, "file": str(path), "reason": reason}, indent=2))
    con.execute("INSERT INTO file_issues VALUES (?, ?, ?, 'quarantined', ?, ?, now())",
                [day, source, str(path), reason, str(target)])


def _load(con: duckdb.DuckDBPyConnection, landing_dir: Path, quarantine_dir: Path, day: str,
          source: str, file_name: str) -> tuple[pd.DataFrame | None, str, list[str]]:
    """The landing file as a frame, or None with a status when it is missing or unusable."""
    try:
        path = _landing_file(landing_dir, day, file_name)
    except UnusableFile as exc:
        con.execute("INSERT INTO file_issues VALUES (?, ?, ?, 'ignored', ?, NULL, now())",
                    [day, source, str(landing_dir / day / file_name), str(exc)])
        return None, "quarantined", [str(exc)]
    if not path.exists():
        return None, "missing", [f"{file_name} not found for {day}"]
    try:
        return read_parquet_file(path), "ingested", []
    except UnusableFile as exc:
        _quarantine_file(con, path, quarantine_dir, day, source, str(exc))
        return None, "quarantined", [str(exc)]


def _record_quarantine(con: duckdb.DuckDBPyConnection, day: str, source: str, source_file: str,
                       quarantined: pd.DataFrame) -> None:
    con.execute("DELETE FROM quarantine WHERE day = ? AND source = ?", [day, source])
    if quarantined.empty:
        return
    con.register("quarantined_batch", quarantined)
    con.execute(
        "INSERT INTO quarantine SELECT ?, ?, ?, row_id, reasons, row_json, now() FROM quarantined_batch",
        [day, source, source_file])
    con.unregister("quarantined_batch")


def _report(day: str, source: str, status: str, rows_read: int, result: ValidationResult | None,
            warnings: list[str]) -> IngestReport:
    reasons: Counter[str] = Counter()
    if result is not None:
        for row_reasons in result.quarantined["reasons"]:
            reasons.update(r.split(" (value")[0] for r in row_reasons.split("; "))
    return IngestReport(
        day=day, source=source, file_status=status, rows_read=rows_read,
        rows_valid=result.n_valid if result is not None else 0,
        rows_quarantined=result.n_quarantined if result is not None else 0,
        warnings=tuple(warnings) + (result.warnings if result is not None else ()),
        top_reasons=tuple(reasons.most_common(5)),
    )


def _move_rows_to_quarantine(result: ValidationResult, mask: pd.Series, reasons: pd.Series) -> ValidationResult:
    """Move the valid rows selected by ``mask`` into the quarantine with per-row reasons."""
    if not mask.any():
        return result
    moved = result.valid.loc[mask.to_numpy()]
    extra = pd.DataFrame({
        "row_id": moved[schema.ID_COLUMN].astype(str).to_numpy(),
        "reasons": reasons[mask].to_numpy(),
        "row_json": moved.apply(lambda row: row.to_json(date_format="iso"), axis=1).to_numpy(),
    })
    return ValidationResult(result.valid.loc[~mask.to_numpy()],
                            pd.concat([result.quarantined, extra], ignore_index=True), result.warnings)


# A screen checks validated rows against what the warehouse already holds.
Screen = Callable[[duckdb.DuckDBPyConnection, ValidationResult, str], ValidationResult]
# A writer replaces the day's rows in the target table with the (possibly empty) valid rows.
Writer = Callable[[duckdb.DuckDBPyConnection, pd.DataFrame, str], None]


def _ingest(con: duckdb.DuckDBPyConnection, landing_dir: Path, quarantine_dir: Path, day: str,
            source: str, file_name: str, validate: Callable[[pd.DataFrame], ValidationResult],
            screen: Screen | None, write: Writer) -> IngestReport:
    """Read, validate, screen and write one landing file in one transaction."""
    ensure_ingest_tables(con)
    source_file = str(landing_dir / day / file_name)
    con.execute("BEGIN TRANSACTION")
    try:
        frame, status, warnings = _load(con, landing_dir, quarantine_dir, day, source, file_name)
        result = None
        if frame is not None:
            try:
                result = validate(frame)
            except UnusableFile as exc:
                _quarantine_file(con, Path(source_file), quarantine_dir, day, source, str(exc))
                status, warnings = "quarantined", [str(exc)]
        if result is not None and screen is not None:
            result = screen(con, result, day)
        write(con, result.valid if result is not None else pd.DataFrame(), day)
        _record_quarantine(con, day, source, source_file,
                           result.quarantined if result is not None else pd.DataFrame())
        report = _report(day, source, status, 0 if frame is None else len(frame), result, warnings)
        con.execute("INSERT INTO ingest_log VALUES (?, ?, ?, ?, ?, ?, ?, now())",
                    [day, source, report.file_status, report.rows_read, report.rows_valid,
                     report.rows_quarantined, "; ".join(report.warnings)])
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    return report


def _insert(con: duckdb.DuckDBPyConnection, rows: pd.DataFrame, sql: str, params: list[object]) -> None:
    if rows.empty:
        return
    con.register("ingest_rows", rows)
    con.execute(sql, params)
    con.unregister("ingest_rows")


def _screen_events(con: duckdb.DuckDBPyConnection, result: ValidationResult, day: str) -> ValidationResult:
    # An id already ingested on another day is a duplicate across days: the first delivery wins.
    con.register("candidate_ids", result.valid[[schema.ID_COLUMN]])
    seen_on = dict(con.execute(
        "SELECT r.event_id, strftime(r.day, '%Y-%m-%d') FROM raw_events r "
        "JOIN candidate_ids c USING (event_id) WHERE r.day <> ?", [day]).fetchall())
    con.unregister("candidate_ids")
    ids = result.valid[schema.ID_COLUMN]
    return _move_rows_to_quarantine(
        result, ids.isin(seen_on),
        ids.map(lambda i: f"event_id: already ingested on another day (value {seen_on.get(i)!r})"))


def _write_events(con: duckdb.DuckDBPyConnection, rows: pd.DataFrame, day: str) -> None:
    con.execute("DELETE FROM raw_events WHERE day = ?", [day])
    columns = ", ".join(_EVENT_COLUMN_TYPES)
    _insert(con, rows, f"INSERT INTO raw_events SELECT ?, {columns}, now() FROM ingest_rows", [day])


def _screen_labels(con: duckdb.DuckDBPyConnection, result: ValidationResult, day: str) -> ValidationResult:
    # Labels join to ingested orders; an unknown order or a repeat delivery is quarantined.
    con.register("label_batch", result.valid[[schema.ID_COLUMN]])
    matched = con.execute(
        "SELECT b.event_id, any_value(strftime(e.day, '%Y-%m-%d')) AS event_day, "
        "any_value(strftime(l.arrival_day, '%Y-%m-%d')) AS earlier_day "
        "FROM label_batch b LEFT JOIN raw_events e USING (event_id) "
        "LEFT JOIN labels l ON l.event_id = b.event_id AND l.arrival_day <> ? "
        "GROUP BY b.event_id", [day]).fetchdf().set_index(schema.ID_COLUMN)
    con.unregister("label_batch")
    ids = result.valid[schema.ID_COLUMN]
    result = _move_rows_to_quarantine(
        result, ids.map(matched["event_day"]).isna(),
        pd.Series("event_id: unknown order, no ingested event with this id", index=ids.index)
        .str.cat(ids.map(lambda i: f" (value {i!r})")))
    ids = result.valid[schema.ID_COLUMN]
    earlier = ids.map(matched["earlier_day"])
    result = _move_rows_to_quarantine(
        result, earlier.notna(), earlier.map(lambda d: f"event_id: label already delivered (value {d!r})"))
    event_day = pd.to_datetime(result.valid[schema.ID_COLUMN].map(matched["event_day"]))
    return ValidationResult(result.valid.assign(event_day=event_day), result.quarantined, result.warnings)


def _write_labels(con: duckdb.DuckDBPyConnection, rows: pd.DataFrame, day: str) -> None:
    con.execute("DELETE FROM labels WHERE arrival_day = ?", [day])
    _insert(con, rows, "INSERT INTO labels SELECT ?, event_id, is_fraud, labelled_at, event_day, now() "
            "FROM ingest_rows", [day])


def _write_complaints(con: duckdb.DuckDBPyConnection, rows: pd.DataFrame, day: str) -> None:
    con.execute("DELETE FROM complaints WHERE day = ?", [day])
    _insert(con, rows, "INSERT INTO complaints SELECT ?, orders, complaints, now() FROM ingest_rows", [day])


def ingest_events(con: duckdb.DuckDBPyConnection, landing_dir: Path, quarantine_dir: Path,
                  day: str) -> IngestReport:
    """Ingest ``<landing>/<day>/events.parquet`` into ``raw_events`` (replacing that day)."""
    return _ingest(con, landing_dir, quarantine_dir, day, "events", schema.EVENTS_FILE,
                   lambda frame: validate_events(frame, day), _screen_events, _write_events)


def ingest_labels(con: duckdb.DuckDBPyConnection, landing_dir: Path, quarantine_dir: Path,
                  day: str) -> IngestReport:
    """Ingest the labels that arrived on ``day`` into ``labels`` (replacing that arrival day)."""
    return _ingest(con, landing_dir, quarantine_dir, day, "labels", schema.LABELS_FILE,
                   validate_labels, _screen_labels, _write_labels)


def ingest_complaints(con: duckdb.DuckDBPyConnection, landing_dir: Path, quarantine_dir: Path,
                      day: str) -> IngestReport:
    """Ingest the day's complaint count into ``complaints`` (replacing that day)."""
    return _ingest(con, landing_dir, quarantine_dir, day, "complaints", schema.COMPLAINTS_FILE,
                   lambda frame: validate_complaints(frame, day), None, _write_complaints)


def label_coverage(con: duckdb.DuckDBPyConnection, days: int = 14) -> pd.DataFrame:
    """Share of each recent event day's orders that have a label so far."""
    ensure_ingest_tables(con)
    return con.execute(
        "SELECT e.day, count(*) AS orders, count(l.event_id) AS labelled, "
        "round(count(l.event_id) / count(*), 4) AS coverage FROM raw_events e "
        "LEFT JOIN labels l USING (event_id) "
        "WHERE e.day > (SELECT max(day) FROM raw_events) - CAST(? AS INTEGER) "
        "GROUP BY e.day ORDER BY e.day", [days]).fetchdf()
