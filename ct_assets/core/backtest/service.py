"""Run a named backtest and keep its results: the one path the CLI and the Dagster assets share."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import duckdb

from ct_assets.core.backtest.catalog import prepare
from ct_assets.core.backtest.engine import run_backtest
from ct_assets.core.backtest.plot import write_backtest_plot
from ct_assets.core.backtest.results import BacktestResult
from ct_assets.core.backtest.store import write_backtest
from ct_assets.core.backtest.strategies import default_strategies
from ct_assets.core.backtest.targets import TargetCheck, check_targets
from ct_assets.core.decision.policy_config import PolicyConfig


def run_named_backtest(stream_name: str, policy: PolicyConfig, strategies: tuple[str, ...] = (),
                       label_delay: int = 0, seed: int = 0, quick: bool = False) -> BacktestResult:
    """Replay the named stream (see ``catalog.stream_cases``) through ``strategies`` (all when empty).

    The result drops the per-decision evidence (``policy_steps``): it is for inspection in process, and
    the stored tables carry every decision's action and outcome.
    """
    stream, config = prepare(stream_name, quick=quick, seed=seed, label_delay=label_delay)
    lineup = default_strategies(policy, names=tuple(strategies) or None)
    return replace(run_backtest(stream, config, lineup), policy_steps=())


def store_backtest(con: duckdb.DuckDBPyConnection, result: BacktestResult, plot_dir: Path) -> Path:
    """Write the run's ``backtest_runs`` / ``backtest_daily`` rows and its PNG; return the PNG's path."""
    write_backtest(con, result)
    return write_backtest_plot(result, plot_dir / f"{result.stream_name}-delay{result.label_delay}-{result.run_id}.png")


def target_checks(result: BacktestResult) -> tuple[TargetCheck, ...]:
    """The issue's targets for ``ct_policy`` when the run has both it and ``always_retrain``; else none."""
    names = {run.strategy for run in result.runs}
    return check_targets(result) if {"ct_policy", "always_retrain"} <= names else ()
