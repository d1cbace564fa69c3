"""The landing writer: one simulated day as ``<landing>/<YYYY-MM-DD>/``, as an upstream would deliver it.

:func:`write_day` keeps not-yet-arrived labels in a private store under ``state_dir`` (the
pipeline never reads it) and writes the landing folder atomically. pyarrow is imported inside
the functions that need it.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import pandas as pd

from ct_assets.core.data import schema
from ct_assets.simulation.config import SimulatorConfig
from ct_assets.simulation.generation import ServingFn, generate_day
from ct_assets.simulation.scenarios import format_timeline


def _arrow_schema(kind: str):  # -> pyarrow.Schema (lazy import keeps module import fast)
    import pyarrow as pa

    if kind == "events":
        types = {schema.ID_COLUMN: pa.int64(), schema.TIME_COLUMN: pa.timestamp("us"),
                 **{c: pa.string() for c in schema.CATEGORICAL_COLUMNS},
                 **{c.name: (pa.int64() if c.dtype == "int" else pa.float64()) for c in schema.NUMERIC_COLUMNS},
                 schema.GROUP_COLUMN: pa.string()}
    elif kind in ("labels", "pending"):
        types = {schema.ID_COLUMN: pa.int64(), schema.FRAUD_LABEL_COLUMN: pa.int64(),
                 "labelled_at": pa.timestamp("us")}
        if kind == "pending":
            types["arrival_day"] = pa.int64()
    else:
        types = {"day": pa.date32(), "orders": pa.int64(), "complaints": pa.int64()}
    return pa.schema(list(types.items()))


def _write_parquet(frame: pd.DataFrame, path: Path, kind: str) -> None:
    """Write ``frame`` with fixed Arrow types (BIGINT, TIMESTAMP, DOUBLE, VARCHAR, DATE)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    arrow_schema = _arrow_schema(kind)
    table = pa.Table.from_pandas(frame[list(arrow_schema.names)], schema=arrow_schema, preserve_index=False)
    pq.write_table(table, path)


def _read_pending(path: Path) -> pd.DataFrame:
    import pyarrow.parquet as pq

    return pq.read_table(path).to_pandas()


def _pending_dir(state_dir: Path, config: SimulatorConfig, arrival_day: int) -> Path:
    return Path(state_dir) / "pending_labels" / config.day_date(arrival_day).isoformat()


def _marker(state_dir: Path, config: SimulatorConfig, day_index: int) -> Path:
    return Path(state_dir) / "generated" / f"{config.day_date(day_index).isoformat()}.json"


def _atomic_write_file(frame: pd.DataFrame, path: Path, kind: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    _write_parquet(frame, tmp, kind)
    os.replace(tmp, path)


def next_day_index(state_dir: Path, config: SimulatorConfig) -> int:
    """The first day index not yet generated into ``state_dir`` (0 for a fresh store)."""
    day_index = 0
    while _marker(state_dir, config, day_index).exists():
        day_index += 1
    return day_index


def write_day(landing_dir: Path, state_dir: Path, config: SimulatorConfig, day_index: int,
              serving_fn: ServingFn | None = None, overwrite: bool = False) -> Path:
    """Generate day ``day_index`` and land it as ``<landing>/<YYYY-MM-DD>/`` (returned).

    The folder holds events.parquet, labels.parquet (every pending label arriving that day; maybe
    empty) and complaints.parquet. It appears atomically (written under a dot-prefixed temporary
    name, then renamed). Labels not yet arrived wait in ``state_dir`` (the pipeline never reads
    it). Days are written in order (day d needs day d-1 written before) so that every label
    reaches its arrival day; an existing day is refused unless ``overwrite``.
    """
    landing_dir, state_dir = Path(landing_dir), Path(state_dir)
    day = config.day_date(day_index)
    target = landing_dir / day.isoformat()
    if target.exists() and not overwrite:
        raise ValueError(f"landing day {target} already exists; pass overwrite=True to replace it")
    if day_index > 0 and not _marker(state_dir, config, day_index - 1).exists():
        raise ValueError(f"day {day_index - 1} ({config.day_date(day_index - 1)}) has not been written to "
                         f"{state_dir}; write days in order (see write_history)")
    batch = generate_day(config, day_index, serving_fn)

    # Replace this day's pending labels (a rewrite may use another delay), then collect arrivals.
    own_file = f"{day.isoformat()}.parquet"
    for stale in (state_dir / "pending_labels").glob(f"*/{own_file}"):
        stale.unlink()
    if len(batch.labels):
        arrival = int(batch.labels["arrival_day"].iloc[0])
        _atomic_write_file(batch.labels, _pending_dir(state_dir, config, arrival) / own_file, "pending")
    arrived = [_read_pending(path) for path in sorted(_pending_dir(state_dir, config, day_index).glob("*.parquet"))]
    arrived = [frame for frame in arrived if len(frame)]
    labels = (pd.concat(arrived, ignore_index=True).sort_values(schema.ID_COLUMN, ignore_index=True) if arrived
              else batch.labels.iloc[:0])

    landing_dir.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{day.isoformat()}.", dir=landing_dir))
    try:
        _write_parquet(batch.events, tmp / schema.EVENTS_FILE, "events")
        _write_parquet(labels, tmp / schema.LABELS_FILE, "labels")
        _write_parquet(batch.complaints, tmp / schema.COMPLAINTS_FILE, "complaints")
        os.chmod(tmp, 0o755)
        if target.exists():
            # A directory cannot be renamed over a non-empty one: move the old day aside first.
            old = Path(tempfile.mkdtemp(prefix=f".{day.isoformat()}.old.", dir=landing_dir))
            os.replace(target, old / "day")
            os.replace(tmp, target)
            shutil.rmtree(old)
        else:
            os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise

    marker = _marker(state_dir, config, day_index)
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.write_text(json.dumps({
        "day": day.isoformat(), "day_index": int(day_index), "scenarios": list(batch.scenarios),
        "orders": len(batch.events), "labels_generated": len(batch.labels), "labels_landed": len(labels),
        "served_error_rate": batch.served_error_rate,
        "complaints": int(batch.complaints["complaints"].iloc[0]),
        "timeline": format_timeline(config.timeline),
    }, indent=2))
    return target


def write_history(landing_dir: Path, state_dir: Path, config: SimulatorConfig, days: int,
                  serving_fn: ServingFn | None = None, overwrite: bool = False) -> list[Path]:
    """Land days ``0 .. days-1`` in order; days already written are kept unless ``overwrite``.

    Returns the folders written by this call: resuming a partly seeded history writes only the
    rest, and a day whose folder landed without its state record (a crash in between) is rewritten.
    """
    if days < 0:
        raise ValueError(f"days must be >= 0, got {days}")
    written = []
    for day_index in range(days):
        landed = (Path(landing_dir) / config.day_date(day_index).isoformat()).exists()
        if landed and _marker(state_dir, config, day_index).exists() and not overwrite:
            continue
        written.append(write_day(landing_dir, state_dir, config, day_index, serving_fn, overwrite=overwrite or landed))
    return written
