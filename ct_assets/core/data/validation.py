"""Validation of landing batches: split every file into good rows and quarantined rows with reasons.

Nothing is dropped silently: a row that fails a check comes back in ``quarantined`` with every
reason it failed; a file that cannot be used at all raises :class:`UnusableFile` with the reason.
Row checks are declared with pandera (imported lazily: it costs ~0.6 s to import).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from ct_assets.core.data import schema

if TYPE_CHECKING:
    import pandas as pd


class UnusableFile(ValueError):
    """A landing file that cannot be ingested at all (unreadable, no usable columns)."""


@dataclass(frozen=True)
class ValidationResult:
    """Good rows (typed as the schema says) and quarantined rows (raw values + reasons)."""

    valid: pd.DataFrame
    quarantined: pd.DataFrame  # columns: row_id, reasons, row_json
    warnings: tuple[str, ...] = field(default_factory=tuple)

    @property
    def n_valid(self) -> int:
        return len(self.valid)

    @property
    def n_quarantined(self) -> int:
        return len(self.quarantined)


def _row_json(row: pd.Series) -> str:
    def clean(value: Any) -> Any:
        import pandas as pd
        if isinstance(value, float) and not math.isfinite(value):
            return repr(value)
        if isinstance(value, (pd.Timestamp, np.datetime64)):
            return str(value)
        if isinstance(value, np.generic):
            return value.item()
        if isinstance(value, bytes):
            return value.decode("utf-8", errors="replace")
        return value

    return json.dumps({k: clean(v) for k, v in row.items()}, default=str)


def _check_columns(frame: pd.DataFrame, expected: tuple[str, ...], what: str) -> list[str]:
    missing = [c for c in expected if c not in frame.columns]
    if missing:
        raise UnusableFile(f"{what}: missing required columns {missing}; found {list(frame.columns)}")
    extra = [c for c in frame.columns if c not in expected]
    return [f"{what}: extra columns ignored: {extra}"] if extra else []


def _coerce(frame: pd.DataFrame, numeric: dict[str, str], timestamps: tuple[str, ...],
            strings: tuple[str, ...]) -> tuple[pd.DataFrame, dict[int, list[str]]]:
    """Coerce columns to their schema types; values that do not convert become reasons."""
    import pandas as pd
    typed = pd.DataFrame(index=frame.index)
    reasons: dict[int, list[str]] = {}

    def fail(mask: pd.Series, column: str, message: str) -> None:
        for idx in frame.index[mask.to_numpy(dtype=bool, na_value=False)]:
            reasons.setdefault(int(idx), []).append(f"{column}: {message} (value {frame.at[idx, column]!r})")

    for column, kind in numeric.items():
        raw = frame[column]
        values = pd.to_numeric(raw, errors="coerce").astype("float64")
        fail(values.isna() & raw.notna(), column, "not a number")
        fail(raw.isna(), column, "missing value")
        finite = np.isfinite(values.fillna(0.0))
        fail(~finite & values.notna(), column, "not finite")
        if kind == "int":
            fractional = values.notna() & finite & (values != np.floor(values.where(finite, 0.0)))
            fail(fractional, column, "not an integer")
        typed[column] = values
    for column in timestamps:
        raw = frame[column]
        values = pd.to_datetime(raw, errors="coerce", utc=False)
        if getattr(values.dt, "tz", None) is not None:
            values = values.dt.tz_convert("UTC").dt.tz_localize(None)
        fail(values.isna(), column, "not a timestamp")
        typed[column] = values
    for column in strings:
        raw = frame[column]
        is_text = raw.map(lambda v: isinstance(v, str))
        is_bytes = raw.map(lambda v: isinstance(v, (bytes, bytearray)))
        # Bytes are what the reader leaves of text that is not valid UTF-8.
        fail(is_bytes, column, "not UTF-8 text")
        fail(~is_text & ~is_bytes, column, "not text")
        typed[column] = raw.where(is_text, None)
    return typed, reasons


def _pandera_reasons(typed: pd.DataFrame, pa_schema: Any) -> dict[int, list[str]]:
    import pandera.errors as pa_errors

    reasons: dict[int, list[str]] = {}
    try:
        pa_schema.validate(typed, lazy=True)
    except pa_errors.SchemaErrors as errors:
        cases = errors.failure_cases
        for row in cases.itertuples(index=False):
            if row.index is None or (isinstance(row.index, float) and math.isnan(row.index)):
                continue
            reasons.setdefault(int(row.index), []).append(
                f"{row.column}: failed {row.check} (value {row.failure_case!r})")
    return reasons


def _merge(reasons: dict[int, list[str]], schema_reasons: dict[int, list[str]]) -> None:
    """Add schema-check reasons, except for columns whose value already failed to convert."""
    for idx, extra in schema_reasons.items():
        failed_columns = {r.split(":")[0] for r in reasons.get(idx, [])}
        new = [r for r in extra if r.split(":")[0] not in failed_columns]
        if new:
            reasons.setdefault(idx, []).extend(new)


def _split(frame: pd.DataFrame, typed: pd.DataFrame, reasons: dict[int, list[str]],
           id_column: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    import pandas as pd
    bad = sorted(reasons)
    quarantined = pd.DataFrame({
        "row_id": [str(frame.at[i, id_column]) for i in bad],
        "reasons": ["; ".join(dict.fromkeys(reasons[i])) for i in bad],
        "row_json": [_row_json(frame.loc[i]) for i in bad],
    })
    valid = typed.drop(index=bad)
    return valid, quarantined


def _flag_duplicates(ids: pd.Series, reasons: dict[int, list[str]], what: str) -> None:
    # Keep the first occurrence of an id; later ones are quarantined (not silently merged).
    dup = ids.duplicated(keep="first") & ids.notna()
    for idx in ids.index[dup.to_numpy()]:
        reasons.setdefault(int(idx), []).append(f"{what}: duplicate id within file (value {ids.at[idx]!r})")


def _events_schema() -> Any:
    import pandera.pandas as pa

    columns: dict[str, Any] = {
        schema.ID_COLUMN: pa.Column(float, pa.Check.ge(0), nullable=False),
        schema.TIME_COLUMN: pa.Column("datetime64[ns]", nullable=False),
        "region": pa.Column(str, pa.Check.isin(schema.REGIONS), nullable=False),
        "channel": pa.Column(str, pa.Check.isin(schema.CHANNELS), nullable=False),
        "category": pa.Column(str, pa.Check.isin(schema.CATEGORIES), nullable=False),
        "query_term": pa.Column(str, pa.Check.str_length(1, schema.MAX_TERM_LENGTH), nullable=False),
        schema.GROUP_COLUMN: pa.Column(str, pa.Check.isin(schema.PROTECTED_GROUPS), nullable=False),
    }
    for col in schema.NUMERIC_COLUMNS:
        columns[col.name] = pa.Column(float, pa.Check.in_range(col.min_value, col.max_value), nullable=False)
    return pa.DataFrameSchema(columns, strict=False, coerce=False)


def validate_events(frame: pd.DataFrame, day: str) -> ValidationResult:
    """Validate one day's events.parquet; rows whose event_ts is not on ``day`` are quarantined.

    Raises :class:`UnusableFile` when a required column is missing.
    """
    import pandas as pd
    warnings = _check_columns(frame, schema.EVENT_COLUMNS, "events")
    frame = frame.reset_index(drop=True)
    numeric = {schema.ID_COLUMN: "int", **{c.name: c.dtype for c in schema.NUMERIC_COLUMNS}}
    strings = (*schema.CATEGORICAL_COLUMNS, schema.GROUP_COLUMN)
    typed, reasons = _coerce(frame, numeric, (schema.TIME_COLUMN,), strings)
    _merge(reasons, _pandera_reasons(typed, _events_schema()))
    day_ts = pd.Timestamp(day)
    off_day = typed[schema.TIME_COLUMN].notna() & (typed[schema.TIME_COLUMN].dt.normalize() != day_ts)
    for idx in typed.index[off_day.to_numpy()]:
        reasons.setdefault(int(idx), []).append(f"{schema.TIME_COLUMN}: not on the landing day (value {frame.at[idx, schema.TIME_COLUMN]!r})")
    _flag_duplicates(typed[schema.ID_COLUMN], reasons, schema.ID_COLUMN)
    valid, quarantined = _split(frame, typed, reasons, schema.ID_COLUMN)
    valid = valid.astype({schema.ID_COLUMN: "int64", **{c.name: ("int64" if c.dtype == "int" else "float64")
                                                        for c in schema.NUMERIC_COLUMNS}})
    return ValidationResult(valid[list(schema.EVENT_COLUMNS)], quarantined, tuple(warnings))


def validate_labels(frame: pd.DataFrame) -> ValidationResult:
    """Validate labels.parquet. Conflicting duplicate labels for an id are all quarantined."""
    import pandera.pandas as pa

    warnings = _check_columns(frame, schema.LABEL_COLUMNS, "labels")
    frame = frame.reset_index(drop=True)
    typed, reasons = _coerce(frame, {schema.ID_COLUMN: "int", schema.FRAUD_LABEL_COLUMN: "int"},
                             ("labelled_at",), ())
    label_schema = pa.DataFrameSchema({
        schema.ID_COLUMN: pa.Column(float, pa.Check.ge(0)),
        schema.FRAUD_LABEL_COLUMN: pa.Column(float, pa.Check.isin([0.0, 1.0])),
    }, strict=False)
    _merge(reasons, _pandera_reasons(typed, label_schema))
    ids, labels = typed[schema.ID_COLUMN], typed[schema.FRAUD_LABEL_COLUMN]
    conflicting = ids.notna() & ids.map(labels.groupby(ids).nunique()).fillna(1).gt(1)
    for idx in typed.index[conflicting.to_numpy()]:
        reasons.setdefault(int(idx), []).append(
            f"{schema.FRAUD_LABEL_COLUMN}: conflicting labels for one event_id (value {frame.at[idx, schema.ID_COLUMN]!r})")
    _flag_duplicates(ids.where(~conflicting), reasons, schema.ID_COLUMN)
    valid, quarantined = _split(frame, typed, reasons, schema.ID_COLUMN)
    valid = valid.astype({schema.ID_COLUMN: "int64", schema.FRAUD_LABEL_COLUMN: "int64"})
    return ValidationResult(valid[list(schema.LABEL_COLUMNS)], quarantined, tuple(warnings))


def validate_complaints(frame: pd.DataFrame, day: str) -> ValidationResult:
    """Validate complaints.parquet: exactly the landing day, non-negative counts."""
    import pandas as pd
    warnings = _check_columns(frame, schema.COMPLAINT_COLUMNS, "complaints")
    frame = frame.reset_index(drop=True)
    typed, reasons = _coerce(frame, {"orders": "int", "complaints": "int"}, ("day",), ())
    for idx in typed.index:
        if typed.at[idx, "day"] is not pd.NaT and pd.notna(typed.at[idx, "day"]) \
                and typed.at[idx, "day"].normalize() != pd.Timestamp(day):
            reasons.setdefault(int(idx), []).append(f"day: not the landing day (value {frame.at[idx, 'day']!r})")
        for column in ("orders", "complaints"):
            value = typed.at[idx, column]
            if pd.notna(value) and value < 0:
                reasons.setdefault(int(idx), []).append(f"{column}: negative count (value {value!r})")
    if len(typed.index.difference(list(reasons))) > 1:
        for idx in list(typed.index.difference(list(reasons)))[1:]:
            reasons.setdefault(int(idx), []).append("more than one complaint row for the day")
    valid, quarantined = _split(frame.assign(_row=frame.index), typed, reasons, "_row")
    valid = valid.astype({"orders": "int64", "complaints": "int64"})
    return ValidationResult(valid[list(schema.COMPLAINT_COLUMNS)], quarantined, tuple(warnings))
