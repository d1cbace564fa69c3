"""Backtest results in DuckDB: ``backtest_runs`` (one row per run and strategy) and ``backtest_daily``
(one row per run, strategy and batch).

Writing a run is idempotent per run id: its old rows are deleted and the new ones inserted in one
transaction, so a re-run replaces itself and a failure leaves the previous rows in place. Every value
is a bound parameter.

Example::

    with duckdb.connect("data/warehouse.duckdb") as con:
        write_backtest(con, result)
        load_backtest_runs(con, result.run_id)
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict
from typing import TYPE_CHECKING

import duckdb

from ct_assets.core.backtest.results import BacktestResult, StrategyRun
from ct_assets.core.common import has_table, utc_now

if TYPE_CHECKING:
    import pandas as pd

# Copied into the analyst snapshot (core/ops/snapshots.py).
ANALYST_TABLES: tuple[str, ...] = ("backtest_runs", "backtest_daily")
_CREATE_RUNS = """
CREATE TABLE IF NOT EXISTS backtest_runs (
    run_id VARCHAR NOT NULL,
    stream_name VARCHAR NOT NULL,
    strategy VARCHAR NOT NULL,
    is_reference BOOLEAN NOT NULL,
    label_delay INTEGER NOT NULL,
    seed INTEGER NOT NULL,
    metric VARCHAR NOT NULL,
    mean_metric DOUBLE,
    mean_accuracy DOUBLE NOT NULL,
    n_trainings INTEGER NOT NULL,
    train_gflops DOUBLE,
    cpu_seconds DOUBLE NOT NULL,
    wall_seconds DOUBLE NOT NULL,
    energy_kwh DOUBLE NOT NULL,
    co2_kg DOUBLE NOT NULL,
    retrains INTEGER NOT NULL,
    fine_tunes INTEGER NOT NULL,
    online_updates INTEGER NOT NULL,
    promotions INTEGER NOT NULL,
    gate_failures INTEGER NOT NULL,
    rollbacks INTEGER NOT NULL,
    escalations INTEGER NOT NULL,
    escalations_approved INTEGER,
    drift_triggers INTEGER NOT NULL,
    recovery_json VARCHAR NOT NULL,
    created_at TIMESTAMP NOT NULL,
    config_json VARCHAR NOT NULL,
    PRIMARY KEY (run_id, strategy)
)
"""

_CREATE_DAILY = """
CREATE TABLE IF NOT EXISTS backtest_daily (
    run_id VARCHAR NOT NULL,
    strategy VARCHAR NOT NULL,
    batch INTEGER NOT NULL,
    metric DOUBLE,
    accuracy DOUBLE NOT NULL,
    action VARCHAR NOT NULL,
    outcome VARCHAR NOT NULL,
    is_change_point BOOLEAN NOT NULL,
    drift_triggered BOOLEAN NOT NULL,
    PRIMARY KEY (run_id, strategy, batch)
)
"""

_RUN_COLUMNS: tuple[str, ...] = (
    "run_id", "stream_name", "strategy", "is_reference", "label_delay", "seed", "metric", "mean_metric",
    "mean_accuracy", "n_trainings", "train_gflops", "cpu_seconds", "wall_seconds", "energy_kwh", "co2_kg",
    "retrains", "fine_tunes", "online_updates", "promotions", "gate_failures", "rollbacks", "escalations",
    "escalations_approved", "drift_triggers", "recovery_json", "created_at", "config_json",
)
# Columns added after the first release of the table (identifiers, never user values).
_ADDED_RUN_COLUMNS: tuple[tuple[str, str], ...] = (("train_gflops", "DOUBLE"), ("escalations_approved", "INTEGER"))
_DAILY_COLUMNS: tuple[str, ...] = (
    "run_id", "strategy", "batch", "metric", "accuracy", "action", "outcome", "is_change_point", "drift_triggered",
)


def ensure_backtest_tables(con: duckdb.DuckDBPyConnection) -> None:
    """Create ``backtest_runs`` and ``backtest_daily`` if they do not exist; a ``backtest_runs`` from before a
    column was added gets it (NULL for its older rows)."""
    con.execute(_CREATE_RUNS)
    for column, kind in _ADDED_RUN_COLUMNS:
        con.execute(f"ALTER TABLE backtest_runs ADD COLUMN IF NOT EXISTS {column} {kind}")
    con.execute(_CREATE_DAILY)


def _finite_or_none(value: float | None) -> float | None:
    return None if value is None or not math.isfinite(value) else float(value)


def _run_row(result: BacktestResult, run: StrategyRun, created_at: object) -> tuple[object, ...]:
    recovery = json.dumps([{"change_point": r.change_point, "pre_level": r.pre_level, "batches": r.batches}
                           for r in run.recovery])
    return (
        result.run_id, result.stream_name, run.strategy, run.is_reference, result.label_delay, result.seed,
        result.metric, _finite_or_none(run.mean_metric), run.mean_accuracy, run.compute.n_trainings,
        run.compute.train_gflops, run.compute.cpu_seconds, run.compute.wall_seconds, run.compute.energy_kwh,
        run.compute.co2_kg,
        run.retrains, run.fine_tunes, run.online_updates, run.promotions, run.gate_failures, run.rollbacks,
        run.escalations, run.escalations_approved, run.drift_triggers, recovery, created_at, result.config_json,
    )


def write_backtest(con: duckdb.DuckDBPyConnection, result: BacktestResult) -> None:
    """Store ``result``, replacing any rows of the same run id, in one transaction."""
    import pandas as pd
    ensure_backtest_tables(con)
    created_at = utc_now()
    runs = [_run_row(result, run, created_at) for run in result.runs]
    daily = pd.DataFrame([asdict(row) for row in result.daily], columns=list(_DAILY_COLUMNS[1:]))
    daily.insert(0, "run_id", result.run_id)
    daily["metric"] = daily["metric"].astype("float64")
    con.execute("BEGIN TRANSACTION")
    try:
        con.execute("DELETE FROM backtest_daily WHERE run_id = ?", [result.run_id])
        con.execute("DELETE FROM backtest_runs WHERE run_id = ?", [result.run_id])
        placeholders = ", ".join("?" for _ in _RUN_COLUMNS)
        con.executemany(f"INSERT INTO backtest_runs ({', '.join(_RUN_COLUMNS)}) VALUES ({placeholders})", runs)
        con.register("backtest_daily_rows", daily)
        try:
            con.execute(f"INSERT INTO backtest_daily ({', '.join(_DAILY_COLUMNS)}) "
                        f"SELECT {', '.join(_DAILY_COLUMNS)} FROM backtest_daily_rows")
        finally:
            con.unregister("backtest_daily_rows")
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise


def load_backtest_runs(con: duckdb.DuckDBPyConnection, run_id: str) -> pd.DataFrame:
    """The ``backtest_runs`` rows of ``run_id`` (one per strategy, ordered by strategy); none before any write.

    Reads only, so a read-only connection works.
    """
    import pandas as pd
    if not has_table(con, "backtest_runs"):
        return pd.DataFrame(columns=list(_RUN_COLUMNS))
    return con.execute("SELECT * FROM backtest_runs WHERE run_id = ? ORDER BY strategy", [run_id]).fetchdf()


def load_backtest_daily(con: duckdb.DuckDBPyConnection, run_id: str) -> pd.DataFrame:
    """The ``backtest_daily`` rows of ``run_id``, by strategy and batch; none before any write."""
    import pandas as pd
    if not has_table(con, "backtest_daily"):
        return pd.DataFrame(columns=list(_DAILY_COLUMNS))
    return con.execute("SELECT * FROM backtest_daily WHERE run_id = ? ORDER BY strategy, batch", [run_id]).fetchdf()
