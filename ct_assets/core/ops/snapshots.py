"""Analyst snapshots: a complete read-only copy of the analyst tables, replaced atomically.

DuckDB allows one writer per file and refuses even read-only opens while a process writes, so
analysts never open the live database. The pipeline copies the tables into a new file next to
the snapshot and renames it over ``latest.duckdb``: a reader holding the old file keeps a
complete old snapshot, a new reader gets the complete new one, nobody sees a half-written file.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import duckdb

from ct_assets.core.backtest import store as backtest_store
from ct_assets.core.data import features, ingest
from ct_assets.core.data.layout import SNAPSHOT_NAME
from ct_assets.core.decision import records
from ct_assets.core.monitoring import store as monitoring_store
from ct_assets.core.ops import alerts
from ct_assets.core.ops.faults import SNAPSHOT_BEFORE_RENAME, pause_point
from ct_assets.core.release import registry, rollout_store

# Each store module declares the tables analysts read; the snapshot copies all of them.
ANALYST_TABLES: tuple[str, ...] = tuple(
    table for store in (ingest, features, monitoring_store, registry, records, alerts, rollout_store, backtest_store)
    for table in store.ANALYST_TABLES)
# Each store's setup, which creates exactly its declared tables (empty until something happens).
ANALYST_TABLE_SETUP: tuple[Callable[[duckdb.DuckDBPyConnection], None], ...] = (
    ingest.ensure_ingest_tables, features.ensure_features_table, monitoring_store.ensure_drift_tables,
    registry.ensure_registry_tables, records.ensure_decision_tables, alerts.ensure_alert_tables,
    rollout_store.ensure_rollout_tables, backtest_store.ensure_backtest_tables)


def ensure_analyst_tables(con: duckdb.DuckDBPyConnection) -> None:
    """Create every declared analyst table that does not exist yet, so an analyst's query on a young
    deployment finds an empty table (no alert raised yet) instead of failing."""
    for setup in ANALYST_TABLE_SETUP:
        setup(con)


@dataclass(frozen=True)
class SnapshotInfo:
    path: Path
    tables: dict[str, int]  # table -> row count
    published_at: str


def _existing_tables(con: duckdb.DuckDBPyConnection) -> set[str]:
    rows = con.execute(
        "SELECT table_name FROM information_schema.tables WHERE table_catalog = current_database() "
        "AND table_schema = 'main'").fetchall()
    return {name for (name,) in rows}


def publish_snapshot(con: duckdb.DuckDBPyConnection, snapshot_dir: Path,
                     tables: tuple[str, ...]) -> SnapshotInfo:
    """Copy ``tables`` (those that exist) from the live connection into ``<dir>/latest.duckdb``.

    Also records a ``snapshot_info`` table inside the snapshot (table, rows, published_at) so a
    reader can check it is consistent with itself.
    """
    for table in tables:
        if not table.isidentifier():
            raise ValueError(f"{table!r} is not a table name")
    snapshot_dir.mkdir(parents=True, exist_ok=True)
    published_at = datetime.now(timezone.utc).isoformat(timespec="seconds")
    temp_path = snapshot_dir / f".{SNAPSHOT_NAME}.{os.getpid()}.tmp"
    temp_path.unlink(missing_ok=True)
    present = [t for t in tables if t in _existing_tables(con)]
    counts: dict[str, int] = {}
    con.execute("ATTACH ? AS snapshot_target", [str(temp_path)])
    try:
        # One transaction over all copies: the snapshot is a consistent point-in-time view.
        con.execute("BEGIN TRANSACTION")
        for table in present:
            con.execute(f'CREATE TABLE snapshot_target."{table}" AS SELECT * FROM main."{table}"')
            counts[table] = con.execute(f'SELECT count(*) FROM snapshot_target."{table}"').fetchall()[0][0]
        con.execute("CREATE TABLE snapshot_target.snapshot_info (table_name VARCHAR, row_count BIGINT, "
                    "published_at VARCHAR)")
        for table, count in counts.items():
            con.execute("INSERT INTO snapshot_target.snapshot_info VALUES (?, ?, ?)", [table, count, published_at])
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        con.execute("DETACH snapshot_target")
        temp_path.unlink(missing_ok=True)
        raise
    con.execute("DETACH snapshot_target")
    final_path = snapshot_dir / SNAPSHOT_NAME
    pause_point(SNAPSHOT_BEFORE_RENAME)
    os.replace(temp_path, final_path)
    return SnapshotInfo(final_path, counts, published_at)
