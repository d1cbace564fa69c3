"""Policy backtesting as assets: replay a stream through every strategy, then store the tables.

The replay, its stream catalog (simulator, generators, census data) and the store load inside the
assets, not with the code location.
"""

import base64

import dagster as dg
from dagster_duckdb import DuckDBResource

from ct_assets.core.backtest.results import BacktestResult
from ct_assets.defs.resources import DUCKDB_POOL, CTSettings, CTStorage

OWNERS = ["team:ml-platform"]


class BacktestRunConfig(dg.Config):
    """Which stream and strategies to replay (launchpad config). Streams: simulator, sea_abrupt,
    sea_gradual, hyperplane_*, stagger_*, agrawal_*, employment_ma; empty strategies = all."""

    stream: str = "simulator"
    strategies: list[str] = []
    label_delay: int = 0
    seed: int = 0
    quick: bool = False


@dg.asset(
    group_name="backtest",
    kinds={"pytorch", "python"},
    owners=OWNERS,
    description="Replays a stream batch by batch (test-then-train, label delay) through never, periodic (3, 7, 14), "
                "always_retrain, always_finetune, drift_retrain, ct_policy (the live policy, training and "
                "gates), online and an oracle reference; accuracy, compute and energy per strategy, "
                "time-to-recover and the hindsight-best retrain schedule. Holds no DuckDB lock while it runs.",
)
def backtest_result(context: dg.AssetExecutionContext, config: BacktestRunConfig,
                    settings: CTSettings) -> dg.Output[BacktestResult]:
    from ct_assets.core.backtest.catalog import strategy_table
    from ct_assets.core.backtest.service import run_named_backtest

    result = run_named_backtest(config.stream, settings.policy(), tuple(config.strategies), config.label_delay,
                                config.seed, config.quick)
    context.log.info(f"backtest {result.run_id}: {config.stream}, label delay {config.label_delay}")
    return dg.Output(result, metadata={
        "run_id": result.run_id,
        "stream": result.stream_name,
        "label_delay": result.label_delay,
        "strategies": dg.MetadataValue.md(strategy_table(result)),
    })


@dg.asset(
    group_name="backtest",
    kinds={"duckdb", "matplotlib"},
    owners=OWNERS,
    pool=DUCKDB_POOL,
    description="Stores a backtest in `backtest_runs` / `backtest_daily` (replacing a re-run's rows) and a PNG "
                "(metric per batch with change points; compute vs accuracy with the Pareto front) under "
                "data/backtest/; the analyst snapshot then carries both tables.",
)
def backtest_tables(backtest_result: BacktestResult, duckdb: DuckDBResource,
                    storage: CTStorage) -> dg.MaterializeResult:
    from ct_assets.core.backtest.service import store_backtest, target_checks

    with duckdb.get_connection() as con:
        plot = store_backtest(con, backtest_result, storage.backtest_dir)
    checks = target_checks(backtest_result)
    targets = "\n".join(f"| {c.target} | {'n/a' if c.value is None else f'{c.value:.4g}'} | {c.threshold:g} | "
                        f"{'yes' if c.met else 'NO'} |" for c in checks)
    return dg.MaterializeResult(metadata={
        "run_id": backtest_result.run_id,
        "targets": dg.MetadataValue.md("| target | value | threshold | met |\n|---|---|---|---|\n" + targets
                                       if checks else "targets need both ct_policy and always_retrain in the run"),
        "plot_path": dg.MetadataValue.path(str(plot)),
        "plot": dg.MetadataValue.md(f"![backtest](data:image/png;base64,{base64.b64encode(plot.read_bytes()).decode()})"),
    })
