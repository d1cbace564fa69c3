"""`ct`: the command line of ct-assets.

    ct demo                 seed a short history, start the simulated stream and `dagster dev`
    ct simulate --days N    land N more simulated days (or --follow to keep a clock running)
    ct models               list the model registry (from the analyst snapshot)

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

DEFAULT_TIMELINE = "stable@0,regional_promotion@12,sensor_hardware_change@18,leakage_bug@24:until=27"
PROJECT_ROOT = Path(__file__).resolve().parent.parent


def _data_dir() -> Path:
    return Path(os.environ.get("CT_DATA_DIR", PROJECT_ROOT / "data")).resolve()


def _simulator_config(args: argparse.Namespace):
    from ct_assets.core.simulator import SimulatorConfig, parse_timeline

    return SimulatorConfig(seed=args.seed, rows_per_day=args.rows_per_day, timeline=parse_timeline(args.scenario))


def _land(args: argparse.Namespace, days: int) -> list[Path]:
    from ct_assets.core.simulator import next_day_index, write_day

    data_dir = _data_dir()
    config = _simulator_config(args)
    state_dir = data_dir / "simulator_state"
    start = next_day_index(state_dir, config)
    written = []
    for day_index in range(start, start + days):
        written.append(write_day(data_dir / "landing", state_dir, config, day_index))
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
    data_dir = _data_dir()
    dagster_home = Path(os.environ.get("DAGSTER_HOME", data_dir / "dagster_home")).resolve()
    dagster_home.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(PROJECT_ROOT / "dagster.yaml", dagster_home / "dagster.yaml")
    env = {**os.environ, "DAGSTER_HOME": str(dagster_home), "CT_DATA_DIR": str(data_dir),
           "CT_DUCKDB_PATH": os.environ.get("CT_DUCKDB_PATH", str(data_dir / "warehouse.duckdb"))}
    already = len(list((data_dir / "simulator_state" / "generated").glob("*.json")))
    if already < args.history_days:
        _land(args, args.history_days - already)
    clock = subprocess.Popen(
        [sys.executable, "-m", "ct_assets.cli", "simulate", "--follow", "--every", str(args.every),
         "--scenario", args.scenario, "--rows-per-day", str(args.rows_per_day), "--seed", str(args.seed)],
        env=env)
    print(f"Dagster UI: http://127.0.0.1:{args.port}  (analysts: {data_dir / 'snapshots' / 'latest.duckdb'})",
          flush=True)
    try:
        return subprocess.call(
            [str(Path(sys.executable).with_name("dagster")), "dev", "-h", "127.0.0.1", "-p", str(args.port),
             "-w", str(PROJECT_ROOT / "workspace.yaml")], env=env, cwd=PROJECT_ROOT)
    finally:
        clock.send_signal(signal.SIGTERM)
        clock.wait(timeout=10)


def cmd_models(args: argparse.Namespace) -> int:
    import duckdb

    snapshot = _data_dir() / "snapshots" / "latest.duckdb"
    if not snapshot.exists():
        print(f"no analyst snapshot yet at {snapshot}", file=sys.stderr)
        return 1
    with duckdb.connect(str(snapshot), read_only=True) as con:
        tables = {name for (name,) in con.execute("SELECT table_name FROM information_schema.tables").fetchall()}
        if "model_registry" not in tables:
            print("no models registered yet")
            return 0
        print(con.execute(
            "SELECT model_id, status, training_path, trigger, created_at, data_window_start, data_window_end "
            "FROM model_registry ORDER BY created_at").fetchdf().to_string(index=False))
    return 0


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

    models = sub.add_parser("models", help="list registered models")
    models.set_defaults(func=cmd_models)
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
