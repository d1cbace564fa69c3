"""`ct`: the command line of ct-assets.

    ct demo                 seed a short history, start the simulated stream and `dagster dev`
    ct simulate --days N    land N more simulated days (or --follow to keep a clock running)
    ct models | decisions | alerts     list them (from the analyst snapshot)
    ct lineage MODEL_ID     a model's ancestry, decision, gates and deployments
    ct approve MODEL_ID --by NAME --reason TEXT [--override-failed-gates]
    ct reject MODEL_ID --by NAME --reason TEXT
    ct rollback --by NAME --reason TEXT
    ct backtest --stream NAME | --file PATH --timestamp-column COL --label-column COL [...]
                            replay a stream through every retraining strategy
    ct tune (--stream NAME | --file PATH ...) --budget 0.2 [--param KEY=V1,V2]... [--seeds 0,1] [--out FILE]
                            calibrate the policy on that history and write the best policy within the budget
    ct doctor [--data-dir DIR] [--repair]   check crash/consistency invariants (exit 1 on errors)

Paths come from CT_DATA_DIR (default ./data); the stream from CT_SCENARIO (a timeline such as
"stable@0,sensor_hardware_change@12"), CT_ROWS_PER_DAY, CT_SEED and CT_DAY_SECONDS.
"""

import argparse
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from ct_assets.cli_backtest import add_backtest_parser
from ct_assets.cli_tune import add_tune_parser
from ct_assets.core.data.layout import DataLayout

# After 13 stable days: a regional promotion (fine-tune), a passing market shift (an update, then a
# rollback when the market reverts), new slang during a label-leaking pipeline bug (gate failure).
# Shifts start a few days after the history so the first model exists when they arrive.
DEFAULT_TIMELINE = ("stable@0,regional_promotion@13:until=17,market_shift@17:until=21,"
                    "new_slang@24:until=28,leakage_bug@24:until=28")
PROJECT_ROOT = Path(__file__).resolve().parent.parent


def _layout() -> DataLayout:
    return DataLayout.from_environment(default_root=PROJECT_ROOT / "data")


def _simulator_config(args: argparse.Namespace):
    from ct_assets.simulation.config import SimulatorConfig
    from ct_assets.simulation.scenarios import parse_timeline

    return SimulatorConfig(seed=args.seed, rows_per_day=args.rows_per_day, timeline=parse_timeline(args.scenario))


def _land(args: argparse.Namespace, days: int) -> list[Path]:
    from ct_assets.simulation.landing import next_day_index, write_day
    from ct_assets.simulation.serving import serving_fn_from_snapshot

    layout = _layout()
    config = _simulator_config(args)
    start = next_day_index(layout.simulator_state_dir, config)
    written = []
    for day_index in range(start, start + days):
        # Orders are served (and complaints and feedback-loop labels caused) by the deployed models.
        serving_fn = serving_fn_from_snapshot(layout.snapshot_path, layout.models_dir)
        written.append(write_day(layout.landing_dir, layout.simulator_state_dir, config, day_index, serving_fn))
        print(f"landed {written[-1].name} (day {day_index})", flush=True)
    return written


def cmd_simulate(args: argparse.Namespace) -> int:
    if not args.follow:
        _land(args, args.days)
        return 0
    print(f"simulated clock: one day every {args.every:g} s (Ctrl-C stops)", flush=True)
    while True:
        _land(args, 1)
        time.sleep(args.every)


def cmd_demo(args: argparse.Namespace) -> int:
    layout = _layout()
    layout.dagster_home.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(PROJECT_ROOT / "dagster.yaml", layout.dagster_home / "dagster.yaml")
    env = {**os.environ, **layout.environment()}
    already = len(list((layout.simulator_state_dir / "generated").glob("*.json")))
    if already < args.history_days:
        _land(args, args.history_days - already)
    clock = subprocess.Popen(
        [sys.executable, "-m", "ct_assets.cli", "simulate", "--follow", "--every", str(args.every),
         "--scenario", args.scenario, "--rows-per-day", str(args.rows_per_day), "--seed", str(args.seed)],
        env=env)
    print(f"Dagster UI: http://127.0.0.1:{args.port}  (analysts: {layout.snapshot_path})",
          flush=True)
    try:
        return subprocess.call(
            [str(Path(sys.executable).with_name("dagster")), "dev", "-h", "127.0.0.1", "-p", str(args.port),
             "-w", str(PROJECT_ROOT / "workspace.yaml")], env=env, cwd=PROJECT_ROOT)
    finally:
        clock.send_signal(signal.SIGTERM)
        clock.wait(timeout=10)


def _snapshot():
    import duckdb

    snapshot = _layout().snapshot_path
    if not snapshot.exists():
        raise ValueError(f"no analyst snapshot yet at {snapshot}: start the pipeline first (make run)")
    return duckdb.connect(str(snapshot), read_only=True)


def _print_query(sql: str, params: Sequence[object] = ()) -> int:
    import duckdb

    with _snapshot() as con:
        try:
            frame = con.execute(sql, list(params)).fetchdf()
        except duckdb.CatalogException:
            print("nothing recorded yet")
            return 0
    print(frame.to_string(index=False) if len(frame) else "nothing recorded yet")
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    return _print_query("SELECT model_id, status, training_path, trigger, parent_model_id, data_window_start, "
                        "data_window_end, round(wall_s, 2) AS wall_s, energy_kwh, created_at "
                        "FROM model_registry ORDER BY created_at")


def cmd_decisions(args: argparse.Namespace) -> int:
    return _print_query("SELECT day, decision_id, action, requires_approval, fired_rules, outcome "
                        "FROM decisions ORDER BY day")


def cmd_alerts(args: argparse.Namespace) -> int:
    return _print_query("SELECT raised_at, severity, kind, subject, message FROM alerts ORDER BY raised_at")


def cmd_lineage(args: argparse.Namespace) -> int:
    from ct_assets.core.release.registry import get_model, list_deployments

    with _snapshot() as con:
        record = get_model(con, args.model_id)
        if record is None:
            raise ValueError(f"unknown model id {args.model_id!r}")
        chain = [record]
        while chain[-1].parent_model_id:
            parent = get_model(con, chain[-1].parent_model_id)
            if parent is None:
                break
            chain.append(parent)
        deployments = [d for d in list_deployments(con) if args.model_id in (d.model_id, d.previous_model_id)]
    for depth, model in enumerate(chain):
        print(f"{'  ' * depth}{model.model_id} [{model.status}] {model.training_path} on "
              f"{model.data_window_start}..{model.data_window_end} ({model.n_train_rows} rows), "
              f"trigger {model.trigger}: {model.trigger_reason}; decision {model.decision_id}; "
              f"code {model.code_version}; artifact {model.artifact_path}")
    for gate in record.gate_results:
        print(f"  gate {gate['name']}: {'passed' if gate['passed'] else 'FAILED'} - {gate['reason']}")
    for d in deployments:
        print(f"  {d.acted_at:%Y-%m-%d %H:%M:%S} {d.action} {d.model_id} (previous {d.previous_model_id}) "
              f"by {d.actor}: {d.reason}")
    return 0


def _live_connection():
    """The live warehouse for a human's write; waits for the pipeline's current writer to finish."""
    import duckdb

    database = _layout().warehouse_path
    if not database.exists():  # connecting would create an empty warehouse
        raise ValueError(f"no warehouse at {database}: start the pipeline first (make run)")
    deadline = time.monotonic() + 60
    while True:
        try:
            return duckdb.connect(str(database))
        except duckdb.IOException as exc:
            if time.monotonic() > deadline:
                raise ValueError(f"the warehouse stayed locked by the pipeline for 60 s: {exc}") from exc
            time.sleep(0.5)


def cmd_backtest(args: argparse.Namespace) -> int:
    import duckdb

    from ct_assets.cli_backtest import run_and_print
    from ct_assets.core.backtest.service import store_backtest

    result = run_and_print(args)
    # Results go to the live warehouse (the analyst snapshot then carries them) unless --db names a file.
    with (duckdb.connect(args.db) if args.db else _live_connection()) as con:
        plot = store_backtest(con, result, _layout().backtest_dir)
    print(f"\nstored in backtest_runs / backtest_daily; plot {plot}")
    return 0


def cmd_approve(args: argparse.Namespace) -> int:
    from ct_assets.core.release.deployment import approve
    from ct_assets.core.release.rollout import RolloutPlan

    with _live_connection() as con:
        deployment = approve(con, args.model_id, args.by, args.reason, RolloutPlan(),
                             override_failed_gates=args.override_failed_gates)
    print(f"promoted {deployment.model_id} (previous {deployment.previous_model_id}): {deployment.reason}")
    return 0


def cmd_reject(args: argparse.Namespace) -> int:
    from ct_assets.core.release.deployment import reject_candidate

    with _live_connection() as con:
        deployment = reject_candidate(con, args.model_id, args.by, args.reason)
    print(f"rejected {deployment.model_id}: {deployment.reason}")
    return 0


def cmd_rollback(args: argparse.Namespace) -> int:
    from ct_assets.core.ops.alerts import LogNotifier
    from ct_assets.core.release.deployment import roll_back

    with _live_connection() as con:
        deployment = roll_back(con, f"human:{args.by}", args.reason, LogNotifier())
    print(f"rolled back to {deployment.model_id} (was {deployment.previous_model_id})")
    return 0


def cmd_doctor(args: argparse.Namespace) -> int:
    import duckdb

    from ct_assets.core.ops.doctor import check_invariants, remove_temp_leftovers

    # --data-dir names a whole layout: its own warehouse, whatever CT_DUCKDB_PATH says.
    layout = DataLayout.from_root(Path(args.data_dir).resolve()) if args.data_dir else _layout()
    database = args.database or str(layout.warehouse_path)
    if args.repair:
        for path in remove_temp_leftovers(layout.root, min_age_seconds=args.min_age_seconds):
            print(f"removed {path}")
    deadline = time.monotonic() + 60
    while True:
        try:
            report = check_invariants(database, layout.root)
            break
        except duckdb.IOException as exc:  # the pipeline is writing: its steps are short, wait
            if time.monotonic() > deadline:
                raise ValueError(f"the warehouse stayed locked by the pipeline for 60 s: {exc}") from exc
            time.sleep(0.5)
    print(report.render())
    return 0 if report.ok else 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ct", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)

    def stream_options(command: argparse.ArgumentParser) -> None:
        command.add_argument("--scenario", default=os.environ.get("CT_SCENARIO", DEFAULT_TIMELINE),
                             help="scenario timeline, e.g. 'stable@0,sensor_hardware_change@12'")
        command.add_argument("--rows-per-day", type=int, default=int(os.environ.get("CT_ROWS_PER_DAY", "2000")))
        command.add_argument("--seed", type=int, default=int(os.environ.get("CT_SEED", "7")))
        command.add_argument("--every", type=float, default=float(os.environ.get("CT_DAY_SECONDS", "60")),
                             help="seconds per simulated day with --follow / in the demo")

    simulate = sub.add_parser("simulate", help="land simulated days into data/landing")
    stream_options(simulate)
    simulate.add_argument("--days", type=int, default=1)
    simulate.add_argument("--follow", action="store_true", help="keep landing one day every --every seconds")
    simulate.set_defaults(func=cmd_simulate)

    demo = sub.add_parser("demo", help="seed history, start the stream and the Dagster UI + daemon")
    stream_options(demo)
    demo.add_argument("--history-days", type=int, default=int(os.environ.get("CT_HISTORY_DAYS", "10")))
    demo.add_argument("--port", type=int, default=int(os.environ.get("CT_PORT", "3000")))
    demo.set_defaults(func=cmd_demo)

    for name, func, text in (("models", cmd_models, "list registered models"),
                              ("decisions", cmd_decisions, "list training decisions"),
                              ("alerts", cmd_alerts, "list alerts")):
        sub.add_parser(name, help=text).set_defaults(func=func)
    lineage = sub.add_parser("lineage", help="show a model's lineage")
    lineage.add_argument("model_id")
    lineage.set_defaults(func=cmd_lineage)
    for name, func, text in (("approve", cmd_approve, "promote a candidate (human approval)"),
                             ("reject", cmd_reject, "reject a candidate")):
        command = sub.add_parser(name, help=text)
        command.add_argument("model_id")
        command.add_argument("--by", required=True, help="your name (recorded)")
        command.add_argument("--reason", required=True, help="why (recorded)")
        if name == "approve":
            command.add_argument("--override-failed-gates", action="store_true",
                                 help="promote even though a gate failed (recorded as an override)")
        command.set_defaults(func=func)
    rollback = sub.add_parser("rollback", help="restore the previous production model")
    rollback.add_argument("--by", required=True)
    rollback.add_argument("--reason", required=True)
    rollback.set_defaults(func=cmd_rollback)
    add_backtest_parser(sub).set_defaults(func=cmd_backtest)
    add_tune_parser(sub)
    doctor = sub.add_parser("doctor", help="check registry, artifacts, snapshot and warehouse invariants")
    doctor.add_argument("--data-dir", help="data directory (default: CT_DATA_DIR or ./data)")
    doctor.add_argument("--database", help="warehouse file (default: <data-dir>/warehouse.duckdb, "
                                           "or CT_DUCKDB_PATH when --data-dir is not given)")
    doctor.add_argument("--repair", action="store_true",
                        help="first remove temporary leftovers of interrupted writes (older than --min-age-seconds)")
    doctor.add_argument("--min-age-seconds", type=float, default=300.0,
                        help="with --repair: keep younger leftovers, a running writer may own them (default 300)")
    doctor.set_defaults(func=cmd_doctor)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except ValueError as exc:
        print(f"ct: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
