"""Turn a team's own history, a (timestamp, features, label) table, into a backtest stream.

Rows are sorted by time and cut into batches per calendar day, ISO week (Monday to Sunday), calendar
month, or every ``batch_rows`` rows. Timezone-aware timestamps are converted to UTC first (days are
UTC days); naive ones are taken as they are. Rows without a label or a timestamp are dropped and
counted (the count is in ``StreamSpec.description``); periods without rows yield no batch, so
``change_points`` index the batches that exist.

Example::

    stream = stream_from_file(Path("orders.parquet"), name="orders", timestamp_column="created_at",
                              label_column="chargeback", numeric_features=("amount",),
                              categorical_features=("country",), batch_by="week", positive_label=True)
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd

from ct_assets.core.backtest.stream import LABEL_COLUMN, Stream, StreamSpec

BATCH_BY: tuple[str, ...] = ("day", "week", "month", "rows")
_PERIOD_FREQUENCY = {"day": "D", "week": "W-SUN", "month": "M"}  # W-SUN: weeks ending Sunday
# CSV columns are sniffed as numbers, timestamps or text only: DuckDB would otherwise turn a yes/no
# label into booleans and the caller's positive_label would no longer match.
READERS = {".parquet": "read_parquet(?)", ".pq": "read_parquet(?)",
           ".csv": "read_csv(?, auto_type_candidates = ['BIGINT', 'DOUBLE', 'TIMESTAMP', 'VARCHAR'])"}

logger = logging.getLogger(__name__)


def _parse_timestamps(values: pd.Series, column: str) -> pd.Series:
    """Timestamps as naive datetimes (aware ones converted to UTC); NaT where the value is missing."""
    if pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values):
        raise ValueError(f"timestamp column {column!r} holds {values.dtype} values; give datetimes or date "
                         "strings (convert epoch numbers first, their unit is ambiguous)")
    if pd.api.types.is_datetime64_any_dtype(values):
        parsed = values
    else:
        # ISO 8601 first (fast, any precision); other layouts element by element.
        parsed = pd.to_datetime(values, errors="coerce", utc=True, format="ISO8601")
        retry = parsed.isna() & values.notna()
        if retry.any():
            parsed[retry] = pd.to_datetime(values[retry], errors="coerce", utc=True, format="mixed")
    unparseable = parsed.isna() & values.notna()
    if unparseable.any():
        examples = values[unparseable].astype(str).unique()[:3].tolist()
        raise ValueError(f"timestamp column {column!r} has {int(unparseable.sum())} unparseable values, "
                         f"e.g. {examples}")
    if isinstance(parsed.dtype, pd.DatetimeTZDtype):
        parsed = parsed.dt.tz_convert("UTC").dt.tz_localize(None)
    return parsed


def _label_value(distinct: Sequence[object], text: str) -> object:
    """``text`` (a command-line positive label) as a value of the label column's type, or ``text``."""
    if all(isinstance(value, (bool, np.bool_)) for value in distinct):
        return {"true": True, "1": True, "false": False, "0": False}.get(text.lower(), text)
    if all(isinstance(value, (int, float, np.number)) for value in distinct):
        try:
            return float(text)
        except ValueError:
            return text
    return text


def _binary_labels(values: pd.Series, column: str, positive_label: object | None) -> np.ndarray:
    """1 where the label is ``positive_label`` (the rest is 0); without one, a 0/1 or true/false label as is."""
    distinct = list(pd.unique(values))
    shown = sorted(map(str, distinct))[:10]
    if len(distinct) < 2:
        raise ValueError(f"label column {column!r} has a single value {shown}: nothing to predict")
    if positive_label is None:
        if len(distinct) == 2 and {0, 1} == set(distinct):  # also True/False: True == 1
            positive_label = 1
        else:
            raise ValueError(f"label column {column!r} has {len(distinct)} values {shown}: give the positive "
                             "label (that value becomes 1, every other value 0)")
    if isinstance(positive_label, str):
        positive_label = _label_value(distinct, positive_label)
    if not any(value == positive_label for value in distinct):
        raise ValueError(f"positive label {positive_label!r} is not one of the label values {shown}")
    return (values == positive_label).to_numpy(dtype=np.int64)


def _numeric(values: pd.Series, column: str) -> pd.Series:
    try:
        return pd.to_numeric(values, errors="raise").astype(float)
    except (TypeError, ValueError):
        raise ValueError(f"numeric feature {column!r} has non-numeric values") from None


def _categorical(values: pd.Series) -> pd.Series:
    """Strings, with missing values kept missing (the model's unknown bucket)."""
    return values.astype(str).astype(object).where(values.notna(), None)


def _with_change_times(change_points: Sequence[int], change_times: Sequence[str],
                        batches: Sequence[pd.DataFrame], timestamp_column: str) -> tuple[int, ...]:
    """``change_points`` plus, per change time, the first batch (after the first) starting at or after it."""
    starts = [batch[timestamp_column].iloc[0] for batch in batches]
    points = set(change_points)
    for text in change_times:
        when = _parse_timestamps(pd.Series([text]), "change time").iloc[0]
        if when <= starts[0]:
            raise ValueError(f"change time {text!r} is not after the first batch's start ({starts[0]})")
        later = [index for index, start in enumerate(starts) if index > 0 and start >= when]
        if not later:
            raise ValueError(f"change time {text!r} is after the start of the last batch ({starts[-1]})")
        points.add(later[0])
    return tuple(sorted(points))


def stream_from_table(table: pd.DataFrame, *, name: str, timestamp_column: str, label_column: str,
                      numeric_features: Sequence[str], categorical_features: Sequence[str] = (),
                      segment_columns: Sequence[str] = (), protected_column: str | None = None,
                      batch_by: str = "day", batch_rows: int | None = None, positive_label: object | None = None,
                      change_points: Sequence[int] = (), change_times: Sequence[str] = ()) -> Stream:
    """A stream of ``table``'s rows in time order, one batch per ``batch_by`` period (or ``batch_rows`` rows).

    Each batch keeps the timestamp column, the features, the segment and protected columns, and
    ``label`` = 1 where ``label_column == positive_label`` and 0 elsewhere (any number of label values);
    without ``positive_label`` the label must be 0/1 or true/false. A string ``positive_label`` is read
    as the label column's type (``"1"`` matches 1, ``"true"`` matches True).
    Numeric features become floats, categorical and segment columns strings. With ``batch_by="rows"``
    the last batch may be smaller. ``change_times`` (dates or times, when known changes began) add the
    index of the first batch that starts at or after each to ``change_points``. Raises ValueError for missing columns, unparseable timestamps, a
    label with a single value, a label of other values without ``positive_label``, or fewer than two batches.
    """
    if batch_by not in BATCH_BY:
        raise ValueError(f"batch_by must be one of {BATCH_BY}, got {batch_by!r}")
    if batch_by == "rows":
        if isinstance(batch_rows, bool) or not isinstance(batch_rows, int) or batch_rows < 1:
            raise ValueError(f"batch_by='rows' needs batch_rows, a positive int, got {batch_rows!r}")
    elif batch_rows is not None:
        raise ValueError(f"batch_rows is only used with batch_by='rows', not {batch_by!r}")
    numeric_features, categorical_features = tuple(numeric_features), tuple(categorical_features)
    segment_columns = tuple(segment_columns)
    inputs = (*numeric_features, *categorical_features)
    if label_column in inputs or timestamp_column in inputs:
        raise ValueError(f"the label {label_column!r} and timestamp {timestamp_column!r} columns cannot be features")
    wanted = list(dict.fromkeys((timestamp_column, label_column, *inputs, *segment_columns,
                                 *((protected_column,) if protected_column else ()))))
    missing = [column for column in wanted if column not in table.columns]
    if missing:
        raise ValueError(f"table lacks columns {missing}; it has {list(table.columns)}")

    timestamps = _parse_timestamps(table[timestamp_column], timestamp_column)
    keep = timestamps.notna() & table[label_column].notna()
    dropped = int((~keep).sum())
    rows = table.loc[keep, wanted].assign(**{timestamp_column: timestamps[keep]})
    rows = rows.sort_values(timestamp_column, kind="stable").reset_index(drop=True)
    if rows.empty:
        raise ValueError(f"table has no rows with both a timestamp and a label ({dropped} dropped)")

    frame = pd.DataFrame({timestamp_column: rows[timestamp_column]})
    for column in numeric_features:
        frame[column] = _numeric(rows[column], column)
    for column in (*categorical_features, *segment_columns,
                   *((protected_column,) if protected_column else ())):
        if column not in frame.columns:
            frame[column] = _categorical(rows[column])
    frame[LABEL_COLUMN] = _binary_labels(rows[label_column], label_column, positive_label)

    if batch_by == "rows":
        keys = np.arange(len(frame)) // batch_rows
    else:
        keys = frame[timestamp_column].dt.to_period(_PERIOD_FREQUENCY[batch_by]).to_numpy()
    batches = tuple(group.reset_index(drop=True) for _, group in frame.groupby(keys, sort=True))
    if len(batches) < 2:
        raise ValueError(f"table {name!r} makes {len(batches)} batch(es) by {batch_by!r}; a stream needs at least 2")

    first, last = frame[timestamp_column].iloc[0], frame[timestamp_column].iloc[-1]
    unit = f"batches of {batch_rows} rows" if batch_by == "rows" else f"{batch_by} batches"
    description = (f"{len(frame)} rows in {len(batches)} {unit} from {first} to {last}; "
                   f"{dropped} rows dropped for a missing label or timestamp")
    if dropped:
        logger.info("stream %s: %s", name, description)
    spec = StreamSpec(name=name, numeric_features=numeric_features, categorical_features=categorical_features,
                      segment_columns=segment_columns, protected_column=protected_column,
                      change_points=_with_change_times(change_points, change_times, batches, timestamp_column),
                      description=description)
    return Stream(spec, batches)


def read_table(path: Path) -> pd.DataFrame:
    """A Parquet (``.parquet``/``.pq``) or CSV (``.csv``) file as a frame, read with DuckDB.

    CSV values are read as integers, floats, timestamps or text (never booleans). Raises
    FileNotFoundError for a missing file and ValueError for another suffix, an unreadable file or one
    without data rows.
    """
    path = Path(path)
    reader = READERS.get(path.suffix.lower())
    if reader is None:
        raise ValueError(f"{path.name}: unsupported file type {path.suffix!r}; use one of {sorted(READERS)}")
    if not path.is_file():
        raise FileNotFoundError(f"no such file: {path}")
    try:
        with duckdb.connect() as con:
            table = con.execute(f"SELECT * FROM {reader}", [str(path)]).fetchdf()
    except duckdb.Error as exc:  # a corrupt Parquet file, a CSV DuckDB cannot sniff
        raise ValueError(f"cannot read {path.name}: {str(exc).splitlines()[0]}") from None
    if table.empty:
        raise ValueError(f"{path.name} has no data rows")
    return table


def stream_from_file(path: Path, **kwargs: object) -> Stream:
    """:func:`stream_from_table` over :func:`read_table` of ``path``; takes the same keyword arguments."""
    return stream_from_table(read_table(path), **kwargs)  # type: ignore[arg-type]
