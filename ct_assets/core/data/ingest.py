"""Landing zone -> DuckDB: one day's events, labels and complaints, validated and idempotent.

Each ingest replaces the day's rows in one transaction (delete + insert), so re-running a day
never duplicates rows and a crash never leaves half a day. Bad rows go to ``quarantine`` with
their reasons; an unreadable file is moved to ``<quarantine_dir>/<day>/`` and logged in
``file_issues``. Values are always bound as parameters, never formatted into SQL.

Files are streamed in batches of :data:`BATCH_ROWS` rows into temporary stage tables, so memory
stays bounded however large a landing file is. Each batch is validated and screened against the
warehouse and the batches staged before it, so duplicate ids are caught across batch boundaries
too (the first occurrence wins; conflicting labels split across batches keep the first).
"""

from __future__ import annotations

import json
import shutil
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import duckdb

from ct_assets.core.common import parse_iso_day
from ct_assets.core.data import schema
from ct_assets.core.data.validation import (
    UnusableFile,
    ValidationResult,
    validate_complaints,
    validate_events,
    validate_labels,
)
from ct_assets.core.ops.faults import INGEST_BEFORE_COMMIT, pause_point

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

# Rows per streamed batch: ~100 MB of pandas frames at most, whatever the file size.
BATCH_ROWS = 100_000

_EVENT_COLUMN_TYPES = {
    schema.ID_COLUMN: "BIGINT", schema.TIME_COLUMN: "TIMESTAMP",
    **{c: "VARCHAR" for c in schema.CATEGORICAL_COLUMNS},
    **{c.name: ("BIGINT" if c.dtype == "int" else "DOUBLE") for c in schema.NUMERIC_COLUMNS},
    schema.GROUP_COLUMN: "VARCHAR",
}

# Copied into the analyst snapshot (core/ops/snapshots.py).
ANALYST_TABLES: tuple[str, ...] = ("raw_events", "labels", "complaints", "quarantine", "file_issues", "ingest_log")
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


@dataclass(frozen=True)
class LandingScan:
    """The landing zone's complete day folders, and every other entry with why it was ignored."""

    days: tuple[str, ...]
    ignored: tuple[tuple[str, str], ...] = field(default_factory=tuple)  # (entry name, reason)


def scan_landing(landing_dir: Path) -> LandingScan:
    """Complete day folders (oldest first) plus the entries that are not days, with reasons.

    Dot-prefixed entries are still being written and are neither days nor ignored. Symlinks are
    never followed (they could point outside the landing zone); names that are not calendar dates
    (``not-a-day``, ``2026-02-30``, ``../x``) and plain files are ignored. Never raises for an odd entry,
    so a sensor listing the zone cannot be crashed by what an upstream drops there.
    """
    if not landing_dir.is_dir():
        return LandingScan(())
    days: list[str] = []
    ignored: list[tuple[str, str]] = []
    for entry in landing_dir.iterdir():
        name = entry.name
        if name.startswith("."):
            continue
        if entry.is_symlink():
            ignored.append((name, f"{name!r} is a symlink; landing entries are never followed"))
            continue
        try:
            parse_iso_day(name, "landing day")
        except ValueError as exc:
            ignored.append((name, str(exc)))
            continue
        if not entry.is_dir():
            ignored.append((name, f"{name!r} is not a directory"))
            continue
        days.append(name)
    return LandingScan(tuple(sorted(days)), tuple(sorted(ignored)))


def list_landed_days(landing_dir: Path) -> list[str]:
    """Complete day folders in the landing zone, oldest first (see :func:`scan_landing`)."""
    return list(scan_landing(landing_dir).days)


def _landing_file(landing_dir: Path, day: str, file_name: str) -> Path:
    parse_iso_day(day, "landing day")
    day_dir = landing_dir / day
    path = day_dir / file_name
    for link in (day_dir, path):
        if link.is_symlink():
            raise UnusableFile(f"{link}: is a symlink; landing days and files must be regular "
                               "directories and files inside the landing zone (not followed)")
    return path


def _text_column(array: pa.Array) -> pd.Series:
    """A string/binary Arrow column as Python str values; values that are not UTF-8 stay bytes.

    Validation then quarantines just those rows ("not UTF-8 text") instead of the whole file.
    """
    import pandas as pd
    import pyarrow as pa

    large = pa.types.is_large_string(array.type) or pa.types.is_large_binary(array.type)
    as_text = array.view(pa.large_string() if large else pa.string())
    try:
        as_text.validate(full=True)
        return as_text.to_pandas()
    except pa.ArrowInvalid:
        raw = array.view(pa.large_binary() if large else pa.binary()).to_pylist()
        return pd.Series([_decode_utf8(value) for value in raw], dtype=object)


def _decode_utf8(value: bytes | None) -> str | bytes | None:
    if value is None:
        return None
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        return value


def _batch_frame(batch: pa.RecordBatch) -> pd.DataFrame:
    import pandas as pd
    import pyarrow as pa

    text_types = (pa.types.is_string, pa.types.is_large_string, pa.types.is_binary, pa.types.is_large_binary)
    columns: dict[str, object] = {}
    for name, array in zip(batch.schema.names, batch.columns):
        if pa.types.is_dictionary(array.type):
            array = array.dictionary_decode()
        if any(is_text(array.type) for is_text in text_types):
            columns[name] = _text_column(array)
        else:
            columns[name] = array.to_pandas(coerce_temporal_nanoseconds=True)
    return pd.DataFrame(columns, index=pd.RangeIndex(batch.num_rows))


def iter_parquet_batches(path: Path, batch_rows: int = BATCH_ROWS) -> Iterator[pd.DataFrame]:
    """Stream a Parquet file as frames of at most ``batch_rows`` rows (at least one, maybe empty).

    Memory stays bounded by one batch plus the row group being decoded. Any read failure, at
    open or mid-file, is an :class:`UnusableFile` naming the file.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        with pq.ParquetFile(path) as parquet:
            produced = False
            for batch in parquet.iter_batches(batch_size=batch_rows):
                produced = True
                yield _batch_frame(batch)
            if not produced:  # header only: validation still checks the columns
                yield _batch_frame(pa.RecordBatch.from_pylist([], schema=parquet.schema_arrow))
    except (pa.ArrowException, OSError) as exc:
        raise UnusableFile(f"{path.name}: unreadable Parquet ({type(exc).__name__}: {exc})") from exc


def _quarantine_file(con: duckdb.DuckDBPyConnection, path: Path, quarantine_dir: Path, day: str,
                     source: str, reason: str) -> None:
    target_dir = quarantine_dir / day
    target_dir.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%f")
    target = target_dir / f"{stamp}-{path.name}"
    shutil.move(str(path), target)
    target.with_suffix(target.suffix + ".reason.json").write_text(
        json.dumps({"day": day, "source": source, "file": str(path), "reason": reason}, indent=2))
    con.execute("INSERT INTO file_issues VALUES (?, ?, ?, 'quarantined', ?, ?, now())",
                [day, source, str(path), reason, str(target)])


@dataclass
class _Tally:
    """What the batches of one file added up to."""

    rows_read: int = 0
    rows_valid: int = 0
    rows_quarantined: int = 0
    warnings: list[str] = field(default_factory=list)
    reasons: Counter[str] = field(default_factory=Counter)

    def add(self, rows_read: int, result: ValidationResult) -> None:
        self.rows_read += rows_read
        self.rows_valid += result.n_valid
        self.rows_quarantined += result.n_quarantined
        self.warnings.extend(w for w in result.warnings if w not in self.warnings)
        for row_reasons in result.quarantined["reasons"]:
            self.reasons.update(r.split(" (value")[0] for r in row_reasons.split("; "))

    def report(self, day: str, source: str, status: str, warnings: list[str]) -> IngestReport:
        return IngestReport(
            day=day, source=source, file_status=status, rows_read=self.rows_read, rows_valid=self.rows_valid,
            rows_quarantined=self.rows_quarantined, warnings=tuple(warnings) + tuple(self.warnings),
            top_reasons=tuple(self.reasons.most_common(5)),
        )


def _move_rows_to_quarantine(result: ValidationResult, mask: pd.Series, reasons: pd.Series) -> ValidationResult:
    """Move the valid rows selected by ``mask`` into the quarantine with per-row reasons."""
    import pandas as pd
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


@dataclass(frozen=True)
class _Target:
    """Where one source's rows go.

    ``select`` turns the valid frame (registered as ``ingest_rows``) into rows of ``table``; its
    first ``?`` is the day. ``screen`` checks valid rows against the warehouse and the rows staged
    by earlier batches of the same file.
    """

    table: str
    day_column: str
    select: str
    screen: Callable[[duckdb.DuckDBPyConnection, ValidationResult, str, str], ValidationResult]

    @property
    def stage(self) -> str:
        return f"ingest_stage_{self.table}"


_QUARANTINE_STAGE = "ingest_stage_quarantine"


def _stage(con: duckdb.DuckDBPyConnection, table: str, frame: pd.DataFrame, select: str,
           params: list[object]) -> None:
    if frame.empty:
        return
    con.register("ingest_rows", frame)
    con.execute(f"INSERT INTO {table} SELECT {select} FROM ingest_rows", params)
    con.unregister("ingest_rows")


@dataclass(frozen=True)
class _Staged:
    """What staging one landing file produced, before the day's rows are swapped in."""

    status: str  # IngestReport.file_status
    warnings: list[str]
    tally: _Tally
    path: Path | None = None
    refused: str | None = None  # why the file was not opened (a symlink): logged as 'ignored'
    unusable: str | None = None  # why no row of the file can be used: the file moves to quarantine


def _stage_file(con: duckdb.DuckDBPyConnection, landing_dir: Path, day: str, source: str, file_name: str,
                validate: Callable[[pd.DataFrame], ValidationResult], target: _Target) -> _Staged:
    """Validate and screen the landing file batch by batch into the (empty) stage tables."""
    try:
        path = _landing_file(landing_dir, day, file_name)
    except UnusableFile as exc:
        return _Staged("quarantined", [str(exc)], _Tally(), refused=str(exc))
    if not path.exists():
        return _Staged("missing", [f"{file_name} not found for {day}"], _Tally())
    tally = _Tally()
    try:
        if not path.is_file():  # a directory, or a FIFO that would block the reader forever
            raise UnusableFile(f"{path.name}: not a regular file")
        for frame in iter_parquet_batches(path, BATCH_ROWS):
            result = target.screen(con, validate(frame), day, target.stage)
            _stage(con, target.stage, result.valid, target.select, [day])
            _stage(con, _QUARANTINE_STAGE, result.quarantined, "?, ?, ?, row_id, reasons, row_json, now()",
                   [day, source, str(path)])
            tally.add(len(frame), result)
    except UnusableFile as exc:
        # An unusable file is kept whole in the quarantine directory, none of its rows in tables.
        con.execute(f"DELETE FROM {target.stage}")
        con.execute(f"DELETE FROM {_QUARANTINE_STAGE}")
        return _Staged("quarantined", [str(exc)], _Tally(), path, unusable=str(exc))
    return _Staged("ingested", [], tally, path)


def _ingest(con: duckdb.DuckDBPyConnection, landing_dir: Path, quarantine_dir: Path, day: str,
            source: str, file_name: str, validate: Callable[[pd.DataFrame], ValidationResult],
            target: _Target) -> IngestReport:
    """Stage one landing file in temporary tables, then replace the day's rows in one transaction.

    DuckDB keeps a transaction's uncommitted appends in memory, while a temporary table spills to
    disk under ``memory_limit``: staging first keeps memory bounded for any file size. The final
    delete + insert-select is one short transaction, so readers and crashes see the whole old day
    or the whole new one, and temporary tables vanish with the connection, so a crash leaves
    nothing behind.
    """
    parse_iso_day(day, "landing day")
    ensure_ingest_tables(con)
    con.execute(f"CREATE OR REPLACE TEMP TABLE {target.stage} AS SELECT * FROM {target.table} LIMIT 0")
    con.execute(f"CREATE OR REPLACE TEMP TABLE {_QUARANTINE_STAGE} AS SELECT * FROM quarantine LIMIT 0")
    try:
        staged = _stage_file(con, landing_dir, day, source, file_name, validate, target)
        report = staged.tally.report(day, source, staged.status, staged.warnings)
        con.execute("BEGIN TRANSACTION")
        try:
            con.execute(f"DELETE FROM {target.table} WHERE {target.day_column} = ?", [day])
            con.execute(f"INSERT INTO {target.table} SELECT * FROM {target.stage}")
            con.execute("DELETE FROM quarantine WHERE day = ? AND source = ?", [day, source])
            con.execute(f"INSERT INTO quarantine SELECT * FROM {_QUARANTINE_STAGE}")
            if staged.refused is not None:
                con.execute("INSERT INTO file_issues VALUES (?, ?, ?, 'ignored', ?, NULL, now())",
                            [day, source, str(landing_dir / day / file_name), staged.refused])
            if staged.unusable is not None and staged.path is not None:
                _quarantine_file(con, staged.path, quarantine_dir, day, source, staged.unusable)
            con.execute("INSERT INTO ingest_log VALUES (?, ?, ?, ?, ?, ?, ?, now())",
                        [day, source, report.file_status, report.rows_read, report.rows_valid,
                         report.rows_quarantined, "; ".join(report.warnings)])
            pause_point(INGEST_BEFORE_COMMIT)
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
    finally:
        con.execute(f"DROP TABLE IF EXISTS {target.stage}")
        con.execute(f"DROP TABLE IF EXISTS {_QUARANTINE_STAGE}")
    return report


def _screen_events(con: duckdb.DuckDBPyConnection, result: ValidationResult, day: str,
                   stage: str) -> ValidationResult:
    # An id already ingested on another day is a duplicate across days: the first delivery wins.
    # An id staged by an earlier batch of this file is a duplicate within the file.
    con.register("candidate_ids", result.valid[[schema.ID_COLUMN]])
    seen_on = dict(con.execute(
        "SELECT c.event_id, strftime(r.day, '%Y-%m-%d') FROM candidate_ids c JOIN "
        f"(SELECT event_id, day FROM raw_events WHERE day <> ? UNION ALL SELECT event_id, day FROM {stage}) r "
        "USING (event_id)", [day]).fetchall())
    con.unregister("candidate_ids")
    ids = result.valid[schema.ID_COLUMN]
    return _move_rows_to_quarantine(
        result, ids.isin(seen_on),
        ids.map(lambda i: f"event_id: duplicate id within file (value {i!r})" if seen_on.get(i) == day
                else f"event_id: already ingested on another day (value {seen_on.get(i)!r})"))


def _screen_labels(con: duckdb.DuckDBPyConnection, result: ValidationResult, day: str,
                   stage: str) -> ValidationResult:
    # Labels join to ingested orders; an unknown order, a repeat delivery (on another arrival day)
    # or an id staged by an earlier batch of this file is quarantined.
    import pandas as pd
    con.register("label_batch", result.valid[[schema.ID_COLUMN]])
    matched = con.execute(
        "SELECT b.event_id, any_value(strftime(e.day, '%Y-%m-%d')) AS event_day, "
        "any_value(strftime(l.arrival_day, '%Y-%m-%d')) AS earlier_day "
        "FROM label_batch b LEFT JOIN raw_events e USING (event_id) LEFT JOIN "
        f"(SELECT event_id, arrival_day FROM labels WHERE arrival_day <> ? "
        f"UNION ALL SELECT event_id, arrival_day FROM {stage}) l ON l.event_id = b.event_id "
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
        result, earlier.notna(),
        earlier.map(lambda d: "event_id: duplicate id within file" if d == day
                    else f"event_id: label already delivered (value {d!r})"))
    event_day = pd.to_datetime(result.valid[schema.ID_COLUMN].map(matched["event_day"]))
    return ValidationResult(result.valid.assign(event_day=event_day), result.quarantined, result.warnings)


def _screen_complaints(con: duckdb.DuckDBPyConnection, result: ValidationResult, day: str,
                       stage: str) -> ValidationResult:
    # One complaint row per day: a row staged by an earlier batch of this file wins.
    import pandas as pd
    if not con.execute(f"SELECT count(*) FROM {stage}").fetchall()[0][0]:
        return result
    mask = pd.Series(True, index=result.valid.index)
    keyed = result.valid.assign(**{schema.ID_COLUMN: result.valid["day"]})
    moved = _move_rows_to_quarantine(ValidationResult(keyed, result.quarantined, result.warnings), mask,
                                     pd.Series("more than one complaint row for the day", index=mask.index))
    return ValidationResult(result.valid.iloc[:0], moved.quarantined, result.warnings)


_EVENTS = _Target("raw_events", "day", f"?, {', '.join(_EVENT_COLUMN_TYPES)}, now()", _screen_events)
_LABELS = _Target("labels", "arrival_day", "?, event_id, is_fraud, labelled_at, event_day, now()", _screen_labels)
_COMPLAINTS = _Target("complaints", "day", "?, orders, complaints, now()", _screen_complaints)


def ingest_events(con: duckdb.DuckDBPyConnection, landing_dir: Path, quarantine_dir: Path,
                  day: str) -> IngestReport:
    """Ingest ``<landing>/<day>/events.parquet`` into ``raw_events`` (replacing that day)."""
    return _ingest(con, landing_dir, quarantine_dir, day, "events", schema.EVENTS_FILE,
                   lambda frame: validate_events(frame, day), _EVENTS)


def ingest_labels(con: duckdb.DuckDBPyConnection, landing_dir: Path, quarantine_dir: Path,
                  day: str) -> IngestReport:
    """Ingest the labels that arrived on ``day`` into ``labels`` (replacing that arrival day)."""
    return _ingest(con, landing_dir, quarantine_dir, day, "labels", schema.LABELS_FILE, validate_labels, _LABELS)


def ingest_complaints(con: duckdb.DuckDBPyConnection, landing_dir: Path, quarantine_dir: Path,
                      day: str) -> IngestReport:
    """Ingest the day's complaint count into ``complaints`` (replacing that day)."""
    return _ingest(con, landing_dir, quarantine_dir, day, "complaints", schema.COMPLAINTS_FILE,
                   lambda frame: validate_complaints(frame, day), _COMPLAINTS)


def label_coverage(con: duckdb.DuckDBPyConnection, days: int = 14) -> pd.DataFrame:
    """Share of each recent event day's orders that have a label so far."""
    ensure_ingest_tables(con)
    return con.execute(
        "SELECT e.day, count(*) AS orders, count(l.event_id) AS labelled, "
        "round(count(l.event_id) / count(*), 4) AS coverage FROM raw_events e "
        "LEFT JOIN labels l USING (event_id) "
        "WHERE e.day > (SELECT max(day) FROM raw_events) - CAST(? AS INTEGER) "
        "GROUP BY e.day ORDER BY e.day", [days]).fetchdf()
