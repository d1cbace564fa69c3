"""Print every figure: code-location import, ingest + features of 100k rows, drift report, then the
engine benchmark (sensor ticks over a year of history, training memory, landed -> promoted latency)
and the policy backtest over all streams (`make bench`).

    .venv/bin/python benchmarks/run_all.py [--rows 100000] [--with-tests] [--quick]

Figures are wall-clock medians over a few repetitions on this machine; targets are in brackets.
"""

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import duckdb

from ct_assets.core.data.features import build_features, load_features
from ct_assets.core.data.ingest import ingest_events
from ct_assets.simulation.config import SimulatorConfig
from ct_assets.simulation.landing import write_history
from ct_assets.simulation.scenarios import parse_timeline

ROOT = Path(__file__).resolve().parent.parent


def median_seconds(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def import_time(repeat: int = 5) -> float:
    code = "import ct_assets.definitions"
    return median_seconds(lambda: subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT), repeat)


def ingest_and_features(rows: int, repeat: int = 3) -> tuple[float, float]:
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        config = SimulatorConfig(rows_per_day=rows, timeline=parse_timeline("stable"))
        write_history(tmp_path / "landing", tmp_path / "state", config, 1)
        day = config.day_date(0).isoformat()
        with duckdb.connect(str(tmp_path / "w.duckdb")) as con:
            ingest = median_seconds(
                lambda: ingest_events(con, tmp_path / "landing", tmp_path / "quarantine", day), repeat)
            feats = median_seconds(lambda: build_features(con, day), repeat)
    return ingest, feats


def drift_report_time(rows: int, repeat: int = 3) -> tuple[float, float]:
    from ct_assets.core.monitoring.drift.report import build_drift_report
    from ct_assets.core.monitoring.drift.types import DriftConfig

    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        config = SimulatorConfig(rows_per_day=rows, timeline=parse_timeline("stable@0,sensor_hardware_change@1"))
        write_history(tmp_path / "landing", tmp_path / "state", config, 2)
        with duckdb.connect(str(tmp_path / "w.duckdb")) as con:
            for index in range(2):
                day = config.day_date(index).isoformat()
                ingest_events(con, tmp_path / "landing", tmp_path / "quarantine", day)
                build_features(con, day)
            reference = load_features(con, config.day_date(0).isoformat(), config.day_date(0).isoformat())
            current = load_features(con, config.day_date(1).isoformat(), config.day_date(1).isoformat())
    build_drift_report(reference.head(1000), current.head(1000), DriftConfig())  # pay one-off imports
    full = median_seconds(lambda: build_drift_report(reference, current, DriftConfig()), repeat)
    return full, len(current)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--with-tests", action="store_true", help="also time the whole test suite")
    parser.add_argument("--quick", action="store_true", help="small backtest streams (a smoke test)")
    args = parser.parse_args()
    print(f"code location import: {import_time():.2f} s  [<= 3 s]")
    ingest, feats = ingest_and_features(args.rows)
    print(f"ingest one day of {args.rows} rows: {ingest:.2f} s; features: {feats:.2f} s; "
          f"total {ingest + feats:.2f} s")
    drift, n = drift_report_time(args.rows)
    print(f"drift report, {n} current vs {n} reference rows (all tests + segments + MMD): {drift:.2f} s  [<= 2 s]")
    sys.stdout.flush()
    subprocess.run([sys.executable, str(ROOT / "benchmarks" / "engine_benchmark.py")], cwd=ROOT, check=True)
    subprocess.run([sys.executable, str(ROOT / "benchmarks" / "backtest_benchmark.py"),
                    *(["--quick"] if args.quick else [])], cwd=ROOT, check=True)
    if args.with_tests:
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"], cwd=ROOT, check=False,
                       stdout=subprocess.DEVNULL)
        print(f"test suite wall time: {time.perf_counter() - start:.0f} s  [< 600 s]")


if __name__ == "__main__":
    main()
