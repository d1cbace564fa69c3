"""Backtest results in a real DuckDB file, and the run's PNG."""

import json
from dataclasses import replace

import duckdb
import numpy as np
import pandas as pd
import pytest

from ct_assets.core.backtest.config import BacktestConfig
from ct_assets.core.backtest.engine import run_backtest
from ct_assets.core.backtest.plot import pareto_front, write_backtest_plot
from ct_assets.core.backtest.results import BacktestResult
from ct_assets.core.backtest.store import (
    ensure_backtest_tables,
    load_backtest_daily,
    load_backtest_runs,
    write_backtest,
)
from ct_assets.core.backtest.strategies import AlwaysFineTune, AlwaysRetrain, Never
from ct_assets.core.backtest.stream import Stream, StreamSpec
from ct_assets.core.training.model import TrainingConfig

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def shifting_stream(n_batches: int = 6, rows: int = 400) -> Stream:
    rng = np.random.default_rng(2)
    batches = []
    for index in range(n_batches):
        x = rng.normal(size=rows)
        label = (rng.random(rows) < 1 / (1 + np.exp(-(2 * x if index < 3 else -2 * x)))).astype(np.int64)
        batches.append(pd.DataFrame({"x": x, "label": label}))
    return Stream(StreamSpec("shifting", numeric_features=("x",), change_points=(3,)), tuple(batches))


@pytest.fixture(scope="module")
def result() -> BacktestResult:
    config = BacktestConfig(training=TrainingConfig(hidden_sizes=(4,), epochs=2, device="cpu", fine_tune_max_steps=5),
                            window_batches=2, seed=4)
    return run_backtest(shifting_stream(), config, strategies=(Never(), AlwaysRetrain(), AlwaysFineTune()))


def test_round_trip_through_a_duckdb_file(tmp_path, result):
    database = tmp_path / "warehouse.duckdb"
    with duckdb.connect(str(database)) as con:
        write_backtest(con, result)
    with duckdb.connect(str(database), read_only=True) as con:
        runs = load_backtest_runs(con, result.run_id)
        daily = load_backtest_daily(con, result.run_id)
    assert sorted(runs["strategy"]) == sorted(run.strategy for run in result.runs)
    for run in result.runs:
        row = runs[runs["strategy"] == run.strategy].iloc[0]
        assert row["stream_name"] == "shifting" and row["label_delay"] == 0 and row["seed"] == 4
        assert row["mean_metric"] == pytest.approx(run.mean_metric)
        assert row["mean_accuracy"] == pytest.approx(run.mean_accuracy)
        assert row["retrains"] == run.retrains and row["fine_tunes"] == run.fine_tunes
        assert row["cpu_seconds"] == pytest.approx(run.compute.cpu_seconds)
        assert row["train_gflops"] == pytest.approx(run.compute.train_gflops)
        assert row["escalations"] == run.escalations and row["escalations_approved"] == run.escalations_approved
        assert row["energy_kwh"] == pytest.approx(run.compute.energy_kwh)
        assert row["co2_kg"] == pytest.approx(run.compute.co2_kg)
        assert bool(row["is_reference"]) == run.is_reference
        recovery = json.loads(row["recovery_json"])
        assert [r["batches"] for r in recovery] == [r.batches for r in run.recovery]
        assert json.loads(row["config_json"])["config"]["seed"] == 4
    assert len(daily) == len(result.daily)
    stored = daily.set_index(["strategy", "batch"])
    for row in result.daily:
        assert stored.loc[(row.strategy, row.batch), "metric"] == pytest.approx(row.metric)
        assert stored.loc[(row.strategy, row.batch), "action"] == row.action
        assert bool(stored.loc[(row.strategy, row.batch), "is_change_point"]) == row.is_change_point


def test_a_table_from_before_the_new_columns_gains_them(tmp_path, result):
    database = tmp_path / "old.duckdb"
    with duckdb.connect(str(database)) as con:
        ensure_backtest_tables(con)
        con.execute("ALTER TABLE backtest_runs DROP COLUMN train_gflops")
        con.execute("ALTER TABLE backtest_runs DROP COLUMN escalations_approved")
        write_backtest(con, result)
        runs = load_backtest_runs(con, result.run_id)
    row = runs[runs["strategy"] == "always_retrain"].iloc[0]
    assert row["train_gflops"] == pytest.approx(result.run("always_retrain").compute.train_gflops)


def test_rewriting_a_run_replaces_its_rows_and_a_failed_write_changes_nothing(tmp_path, result):
    database = tmp_path / "warehouse.duckdb"
    with duckdb.connect(str(database)) as con:
        write_backtest(con, result)
        write_backtest(con, result)
        assert len(load_backtest_runs(con, result.run_id)) == len(result.runs)
        assert len(load_backtest_daily(con, result.run_id)) == len(result.daily)
        other = replace(result, run_id="another-run")
        write_backtest(con, other)
        before = load_backtest_runs(con, result.run_id)
        broken = replace(result, runs=result.runs + (result.runs[0],))  # a duplicate strategy row
        with pytest.raises(duckdb.ConstraintException):
            write_backtest(con, broken)
        after = load_backtest_runs(con, result.run_id)
        assert after["created_at"].tolist() == before["created_at"].tolist()
        assert len(load_backtest_daily(con, result.run_id)) == len(result.daily)
        assert len(load_backtest_runs(con, "another-run")) == len(result.runs)


def test_plot_writes_a_png(tmp_path, result):
    path = write_backtest_plot(result, tmp_path / "plots" / "run.png")
    data = path.read_bytes()
    assert data.startswith(PNG_SIGNATURE) and len(data) > 10_000
    assert not list(path.parent.glob(".*.tmp"))
    with pytest.raises(ValueError, match="png"):
        write_backtest_plot(result, tmp_path / "run.jpg")


def test_pareto_front():
    points = {"cheap": (1.0, 0.80), "best": (5.0, 0.90), "dominated": (6.0, 0.85), "tie_cost": (1.0, 0.70)}
    assert pareto_front(points) == ("cheap", "best")
    assert pareto_front({"a": (1.0, 0.5), "b": (2.0, 0.4)}, higher_is_better=False) == ("a", "b")


def test_reading_before_any_write_returns_no_rows(tmp_path):
    with duckdb.connect(str(tmp_path / "empty.duckdb")) as con:
        assert load_backtest_runs(con, "nothing").empty
        assert load_backtest_daily(con, "nothing").empty
