"""The backtest as a product feature: the assets (launchpad config) and `ct backtest`, on real DuckDB files."""

import dagster as dg
import duckdb

from ct_assets.cli import main
from ct_assets.defs.backtest.assets import backtest_result, backtest_tables
from ct_assets.defs.build import build_definitions


def test_backtest_assets_store_the_run_and_the_snapshot_carries_it(instance, resources, data_dir):
    config = {"stream": "sea_abrupt", "strategies": ["never", "always_retrain", "ct_policy"], "quick": True}
    result = dg.materialize([backtest_result, backtest_tables], instance=instance, resources=resources,
                            run_config={"ops": {"backtest_result": {"config": config}}})
    assert result.success
    run_id = result.output_for_node("backtest_result").run_id
    with duckdb.connect(str(data_dir / "warehouse.duckdb"), read_only=True) as con:
        runs = con.execute("SELECT strategy FROM backtest_runs WHERE run_id = ? ORDER BY strategy", [run_id]).fetchall()
        daily = con.execute("SELECT count(*) FROM backtest_daily WHERE run_id = ?", [run_id]).fetchall()[0][0]
    assert [s for (s,) in runs] == ["always_retrain", "ct_policy", "never", "oracle"]
    assert daily == 4 * (16 - 2)  # four strategies, every batch after the two warm-up batches
    metadata = instance.get_latest_materialization_event(dg.AssetKey("backtest_tables")).asset_materialization.metadata
    assert (data_dir / "backtest").exists() and metadata["plot_path"].value.endswith(".png")
    assert "pareto" in metadata["targets"].value

    snapshot = build_definitions(resources).get_assets_def("analyst_snapshot")
    assert dg.materialize([snapshot], instance=instance, resources=resources).success
    with duckdb.connect(str(data_dir / "snapshots" / "latest.duckdb"), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM backtest_runs").fetchall() == [(4,)]


def test_ct_backtest_prints_the_table_and_stores_it(tmp_path, capsys):
    db = tmp_path / "bt.duckdb"
    assert main(["backtest", "--stream", "stagger_gradual", "--quick", "--strategies", "never,periodic_7",
                 "--label-delay", "1", "--db", str(db)]) == 0
    out = capsys.readouterr().out
    assert "| never" in out and "| periodic_7" in out and "oracle (ref)" in out and "stored in backtest_runs" in out
    with duckdb.connect(str(db), read_only=True) as con:
        assert con.execute("SELECT DISTINCT label_delay FROM backtest_runs").fetchall() == [(1,)]


def test_ct_backtest_refuses_an_unknown_stream_or_strategy(tmp_path, capsys):
    assert main(["backtest", "--stream", "nope", "--quick", "--db", str(tmp_path / "x.duckdb")]) == 2
    assert "unknown stream 'nope'" in capsys.readouterr().err
    assert main(["backtest", "--stream", "sea_abrupt", "--quick", "--strategies", "yolo",
                 "--db", str(tmp_path / "x.duckdb")]) == 2
    assert "unknown strategies ['yolo']" in capsys.readouterr().err
