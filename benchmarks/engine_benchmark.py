"""Engine figures the backtest issue asks for: sensor ticks over a year of history, training memory,
and the landed-day -> promoted-model latency of a `make run` data directory.

    .venv/bin/python benchmarks/engine_benchmark.py [--days 365] [--demo-data-dir data]

Sensor ticks run on a real SQLite Dagster instance holding ``--days`` days of the pipeline's
materializations (every asset a day produces), with each sensor's cursor caught up and one new day
arriving: the steady state of a year-old deployment. Peak memory is the max RSS of a subprocess that
trains the live MLP on a live-sized window.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

import dagster as dg

from ct_assets.defs.data.landing_sensor import landing_sensor
from ct_assets.defs.decision.request_sensor import decision_request_sensor
from ct_assets.defs.decision.triggers import TRIGGER_SENSORS
from ct_assets.defs.release.rollback_sensor import rollback_sensor
from ct_assets.defs.resources import CTSettings, CTStorage
from ct_assets.defs.training.path_sensor import decision_sensor

ROOT = Path(__file__).resolve().parent.parent

START = date(2024, 1, 1)


def _day_events(instance: dg.DagsterInstance, day: str, index: int) -> None:
    """What one day leaves in the event log (metadata as the real assets write it)."""
    def report(asset: str, **metadata: object) -> None:
        instance.report_runless_asset_event(dg.AssetMaterialization(asset_key=asset, partition=day, metadata=metadata))

    report("labels", rows_valid=1600, rows_read=1600)
    report("drift_report", scope="local" if index % 30 == 0 else "none", severity=0.05, severity_level="none",
           affected_segments=[], report_id=f"r-{day}")
    report("concept_drift", verdict="stable", concept_drift=False, beyond_covariate=False)
    report("complaint_report", alert=False, rate_ratio=1.0)
    report("rollout_monitor", verdict="no_rollout", reason="no rollout in progress")
    if index % 30 == 0:
        report("training_decision", decision_id=f"d-{day}", action="fine_tune", fired_rules=["drift_scope"],
               requires_approval=False)
        instance.report_runless_asset_event(dg.AssetMaterialization(
            asset_key="production_model", metadata={"model_id": f"m-{index:012d}", "outcome": "promoted",
                                                    "data_window_end": day}))


def sensor_ticks(days: int, repeat: int = 7) -> dict[str, float]:
    """Median seconds per tick of each sensor, caught up on ``days`` days of history, one new day arriving."""
    results: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory() as tmp, dg.instance_for_test(temp_dir=tmp) as instance:
        landing = Path(tmp) / "data" / "landing"
        history = [(START + timedelta(days=i)).isoformat() for i in range(days + repeat)]
        for day in history[:days]:
            (landing / day).mkdir(parents=True)
        instance.add_dynamic_partitions("days", history[:days])
        for index, day in enumerate(history[:days]):
            _day_events(instance, day, index)
        resources = {"storage": CTStorage(data_dir=str(Path(tmp) / "data")), "settings": CTSettings()}
        sensors = [landing_sensor, *TRIGGER_SENSORS, decision_request_sensor, decision_sensor, rollback_sensor]
        cursors: dict[str, str | None] = {}
        for sensor in sensors:  # catch up once (the first tick of a new deployment), untimed
            result = sensor(dg.build_sensor_context(instance=instance, resources=resources))
            cursors[sensor.name] = result.cursor if isinstance(result, dg.SensorResult) else None
        for offset in range(repeat):
            day = history[days + offset]
            (landing / day).mkdir(parents=True)
            instance.add_dynamic_partitions("days", [day])
            _day_events(instance, day, days + offset)
            for sensor in sensors:
                context = dg.build_sensor_context(instance=instance, resources=resources, cursor=cursors[sensor.name])
                started = time.perf_counter()
                result = sensor(context)
                results.setdefault(sensor.name, []).append(time.perf_counter() - started)
                if isinstance(result, dg.SensorResult) and result.cursor is not None:
                    cursors[sensor.name] = result.cursor
    return {name: statistics.median(times) for name, times in results.items()}


_TRAIN = """
import resource, sys
from ct_assets.simulation.backtest_stream import simulator_stream
from ct_assets.core.training.preprocessing import MODEL_INPUTS
from ct_assets.core.training.model import TrainingConfig, train_from_scratch
import pandas as pd
stream = simulator_stream(timeline="stable@0", n_days=14, events_per_day=2000, seed=0)
frame = pd.concat(stream.batches, ignore_index=True)
model = train_from_scratch(frame[list(MODEL_INPUTS)], frame["label"], TrainingConfig(seed=0))
print(len(frame), model.cost.wall_seconds, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def training_peak_memory() -> tuple[int, float, float]:
    """(rows, wall seconds, peak RSS in MiB) of retraining on a live-sized 14-day window in a fresh process."""
    out = subprocess.run([sys.executable, "-c", _TRAIN], cwd=ROOT, check=True, capture_output=True, text=True)
    rows, wall, rss_kib = out.stdout.split()
    return int(rows), float(wall), int(rss_kib) / 1024


def landed_to_promoted(data_dir: Path) -> list[tuple[str, float]]:
    """Seconds from a landed day folder's arrival to the promotion that day led to, in a `make run` directory.

    Reads the landing folders' modification times and the snapshot's ``deployments`` and ``model_registry``.
    """
    import duckdb

    snapshot = data_dir / "snapshots" / "latest.duckdb"
    if not snapshot.exists():
        return []
    with duckdb.connect(str(snapshot), read_only=True) as con:
        rows = con.execute(
            "SELECT strftime(r.data_window_end, '%Y-%m-%d'), epoch(d.acted_at) FROM deployments d "
            "JOIN model_registry r USING (model_id) WHERE d.action = 'promote' AND r.training_path <> 'online' "
            "ORDER BY d.deployment_id").fetchall()
    latencies = []
    for day, acted_at in rows:
        folder = data_dir / "landing" / day
        if folder.exists():
            latencies.append((day, float(acted_at) - folder.stat().st_mtime))
    return latencies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--demo-data-dir", type=Path, default=ROOT / "data")
    args = parser.parse_args()
    ticks = sensor_ticks(args.days)
    for name, seconds in ticks.items():
        print(f"sensor tick, {name}, {args.days} days of history: {seconds * 1000:.1f} ms  [<= 100 ms]")
    rows, wall, peak = training_peak_memory()
    print(f"retrain on a 14-day window ({rows} rows): {wall:.1f} s wall, peak RSS {peak:.0f} MiB (whole process)")
    latencies = landed_to_promoted(args.demo_data_dir)
    if latencies:
        values = [seconds for _, seconds in latencies]
        print(f"landed day -> promoted model under `make run` ({len(values)} promotions in "
              f"{args.demo_data_dir}): median {statistics.median(values):.0f} s, max {max(values):.0f} s")
    else:
        print(f"landed day -> promoted model: no promotions recorded in {args.demo_data_dir} (run `make run` first)")


if __name__ == "__main__":
    main()
