"""Run a backtest and keep its results: the one path the CLI and the Dagster assets share.

A stream is either a catalog name (``catalog.stream_cases``) or a team's own history file; both replay
through :func:`run_stream_backtest` and land in the same tables and plot.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import duckdb

from ct_assets.core.backtest.adapter import read_table, stream_from_table
from ct_assets.core.backtest.catalog import prepare, training_config
from ct_assets.core.backtest.columns import ColumnRoles, detect_columns, require_columns
from ct_assets.core.backtest.config import BacktestConfig
from ct_assets.core.backtest.engine import run_backtest
from ct_assets.core.backtest.plot import write_backtest_plot
from ct_assets.core.backtest.results import BacktestResult
from ct_assets.core.backtest.store import write_backtest
from ct_assets.core.backtest.strategies import default_strategies
from ct_assets.core.backtest.stream import Stream
from ct_assets.core.backtest.targets import TargetCheck, check_targets
from ct_assets.core.decision.policy_config import PolicyConfig


def run_stream_backtest(stream: Stream, config: BacktestConfig, policy: PolicyConfig,
                        strategies: tuple[str, ...] = ()) -> BacktestResult:
    """Replay ``stream`` through ``strategies`` (all when empty) under ``config``.

    The result drops the per-decision evidence (``policy_steps``): it is for inspection in process, and
    the stored tables carry every decision's action and outcome.
    """
    lineup = default_strategies(policy, names=tuple(strategies) or None)
    return replace(run_backtest(stream, config, lineup), policy_steps=())


def run_named_backtest(stream_name: str, policy: PolicyConfig, strategies: tuple[str, ...] = (),
                       label_delay: int = 0, seed: int = 0, quick: bool = False) -> BacktestResult:
    """Replay the named stream (see ``catalog.stream_cases``) with the catalog's settings for it."""
    stream, config = prepare(stream_name, quick=quick, seed=seed, label_delay=label_delay)
    return run_stream_backtest(stream, config, policy, strategies)


def stream_config(stream: Stream, seed: int = 0, label_delay: int = 0, warmup_batches: int = 2) -> BacktestConfig:
    """The settings for a stream outside the catalog, derived as the catalog derives its own.

    Raises ValueError when the stream has no batch left to replay after the warm-up.
    """
    config = BacktestConfig(seed=seed, label_delay=label_delay, warmup_batches=warmup_batches)
    if stream.n_batches < warmup_batches + 1:
        raise ValueError(f"stream {stream.spec.name!r} has {stream.n_batches} batches, a backtest needs at least "
                         f"{warmup_batches + 1} ({warmup_batches} warm-up + 1): use smaller batches or fewer "
                         "warm-up batches")
    return replace(config, training=training_config(stream, config.window_batches))


def prepare_file(path: Path, *, timestamp_column: str, label_column: str, positive_label: object | None = None,
                 batch_by: str = "day", batch_rows: int | None = None, numeric: Sequence[str] | None = None,
                 categorical: Sequence[str] | None = None, protected_column: str | None = None,
                 segment_columns: Sequence[str] = (), change_times: Sequence[str] = (), seed: int = 0,
                 label_delay: int = 0, warmup_batches: int = 2) -> tuple[Stream, BacktestConfig, ColumnRoles]:
    """A history file (CSV or Parquet) as a stream named after the file, its settings and its column roles.

    Inputs not given are detected (``columns.detect_columns``). Raises FileNotFoundError for a missing
    file and ValueError for any other bad input (see ``adapter.read_table`` and ``stream_from_table``).
    """
    path = Path(path)
    table = read_table(path)
    roles = detect_columns(table, timestamp_column=timestamp_column, label_column=label_column, numeric=numeric,
                           categorical=categorical, protected_column=protected_column)
    require_columns(table, segment_columns, "segment")
    stream = stream_from_table(table, name=path.stem, timestamp_column=timestamp_column, label_column=label_column,
                               numeric_features=roles.numeric, categorical_features=roles.categorical,
                               segment_columns=tuple(segment_columns), protected_column=protected_column,
                               batch_by=batch_by, batch_rows=batch_rows, positive_label=positive_label,
                               change_times=change_times)
    return stream, stream_config(stream, seed, label_delay, warmup_batches), roles


def store_backtest(con: duckdb.DuckDBPyConnection, result: BacktestResult, plot_dir: Path) -> Path:
    """Write the run's ``backtest_runs`` / ``backtest_daily`` rows and its PNG; return the PNG's path."""
    write_backtest(con, result)
    return write_backtest_plot(result, plot_dir / f"{result.stream_name}-delay{result.label_delay}-{result.run_id}.png")


def target_checks(result: BacktestResult) -> tuple[TargetCheck, ...]:
    """The issue's targets for ``ct_policy`` when the run has both it and ``always_retrain``; else none."""
    names = {run.strategy for run in result.runs}
    return check_targets(result) if {"ct_policy", "always_retrain"} <= names else ()
