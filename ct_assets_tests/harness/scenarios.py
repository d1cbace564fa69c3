"""Two scenarios on a :mod:`sandbox <ct_assets_tests.harness.sandbox>` driven by the real `dagster-daemon`.

Nothing here calls an asset directly. Each returns what happened, for a test to assert and a
benchmark to print:

* :func:`run_analysts_scenario`: the shipped workspace processes simulated days (sensors, automation,
  training, promotion) while analyst processes read the snapshot;
* :func:`run_writers_scenario`: a backfill of many day partitions, queued by one command.

Example::

    outcome = run_analysts_scenario(tmp_path, days=4, rows_per_day=2500, readers=8, deadline_s=420)
    assert outcome.readers.failed == outcome.readers.torn == 0
"""

import time
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import duckdb

from ct_assets.core.ops.doctor import DoctorReport, check_invariants
from ct_assets.defs.tags import TRIGGER_TAG
from ct_assets_tests.harness.runs import (
    failed_runs,
    in_flight,
    lock_errors,
    max_overlap,
    status_counts,
    step_intervals,
)
from ct_assets_tests.harness.sandbox import (
    ROOT,
    compute_log_files,
    create_sandbox,
    land_days,
    launch_backfill,
    running_daemon,
    wait_until,
    write_workspace,
)
from ct_assets_tests.harness.snapshot_readers import ReaderStats, SnapshotReaders


@dataclass(frozen=True)
class AnalystsOutcome:
    """Analysts vs the pipeline: what the readers saw and the state the pipeline left behind."""

    days: tuple[str, ...]
    elapsed_s: float
    readers: ReaderStats
    runs: dict[str, int]  # runs by status
    failed_runs: tuple[str, ...]
    publications: int  # analyst_snapshot materializations
    production_models: tuple[str, ...]  # in the last snapshot
    lock_errors: tuple[str, ...]
    doctor: DoctorReport


def _production_in_snapshot(snapshot: Path) -> tuple[str, ...]:
    """The production model ids in the published snapshot (none before the first model or snapshot)."""
    if not snapshot.exists():
        return ()
    try:
        with duckdb.connect(str(snapshot), read_only=True) as con:
            return tuple(m for (m,) in con.execute(
                "SELECT model_id FROM model_registry WHERE status = 'production'").fetchall())
    except duckdb.CatalogException:  # published before the registry table existed
        return ()


def run_analysts_scenario(root: Path, days: int, rows_per_day: int, readers: int,
                          deadline_s: float) -> AnalystsOutcome:
    """The pipeline (real workspace, daemon, sensors and automation) processes ``days`` simulated days
    while ``readers`` analyst processes check the snapshot; returns what happened.

    The clock lands the next day once the previous day's landing run is done (a run alone at the
    pool goes fastest); the pipeline has settled when every day is processed, a model serves in the
    snapshot and no run is queued or running.
    """
    started = time.monotonic()
    deadline = started + deadline_s
    sandbox = create_sandbox(root)
    landed = land_days(sandbox, 1, rows_per_day)
    instance = sandbox.instance()

    def landing_done(day: str) -> bool:
        records = instance.get_run_records(dg.RunsFilter(tags={TRIGGER_TAG: "landing", "dagster/partition": day}))
        return bool(records) and not in_flight(records)

    def settled() -> bool:
        return (all(landing_done(day) for day in landed) and not in_flight(instance.get_run_records())
                and bool(_production_in_snapshot(sandbox.snapshot)))

    def runs_now() -> str:
        return f"runs by status {status_counts(instance.get_run_records())}"

    try:
        with running_daemon(sandbox, ROOT / "workspace.yaml", root / "daemon.log") as daemon, \
                SnapshotReaders(sandbox.snapshot, count=readers) as pool:
            while len(landed) < days:
                newest = landed[-1]
                wait_until(lambda day=newest: landing_done(day), deadline, f"the landing run of {newest}",
                           daemon, runs_now)
                landed += land_days(sandbox, 1, rows_per_day)
            wait_until(settled, deadline, "a promoted model in the snapshot with nothing in flight", daemon,
                       runs_now, poll_seconds=3.0)
            # Judged: the runs up to now (a run the automation starts while the daemon stops is not the test's).
            records = instance.get_run_records()
            stats = pool.stop()
        elapsed = time.monotonic() - started
        publications = len(instance.fetch_materializations(dg.AssetKey("analyst_snapshot"), limit=10_000).records)
        return AnalystsOutcome(
            days=tuple(landed), elapsed_s=elapsed, readers=stats, runs=status_counts(records),
            failed_runs=tuple(failed_runs(instance, records)), publications=publications,
            production_models=_production_in_snapshot(sandbox.snapshot),
            lock_errors=tuple(lock_errors(instance, records, [*compute_log_files(sandbox), root / "daemon.log"])),
            doctor=check_invariants(sandbox.warehouse, sandbox.data_dir))
    finally:
        instance.dispose()


@dataclass(frozen=True)
class WritersOutcome:
    """A backfill launched at once: its runs, how the pool spread their steps, and the warehouse after."""

    job: str
    partitions: tuple[str, ...]
    run_partitions: tuple[str, ...]  # the partition of every run, sorted
    runs: dict[str, int]  # runs by status
    failed_runs: tuple[str, ...]
    launch_s: float  # `dagster job backfill` (creating and queueing every run)
    elapsed_s: float  # first run start -> last run end
    max_parallel_runs: int
    max_parallel_steps: int
    steps: int
    step_processes: int  # steps launched in their own process (multiprocess executor)
    ingested_days: int
    lock_errors: tuple[str, ...]
    doctor: DoctorReport

    @property
    def partitions_per_minute(self) -> float:
        return 60.0 * len(self.run_partitions) / self.elapsed_s if self.elapsed_s > 0 else 0.0


def run_writers_scenario(root: Path, partitions: int, rows_per_day: int, job: str,
                         deadline_s: float) -> WritersOutcome:
    """Land ``partitions`` days, queue a backfill of writers_location's ``job`` over all of them in one
    command, let the daemon drain the queue; returns what happened."""
    started = time.monotonic()
    deadline = started + deadline_s
    sandbox = create_sandbox(root)
    days = land_days(sandbox, partitions, rows_per_day)
    instance = sandbox.instance()
    try:
        instance.add_dynamic_partitions("days", days)
        workspace = write_workspace(root / "writers_workspace.yaml", "ct_assets_tests.harness.writers_location")
        launch_started = time.monotonic()
        launch_backfill(sandbox, workspace, job, days)
        launch_s = time.monotonic() - launch_started

        def drained() -> bool:
            records = instance.get_run_records()
            return len(records) >= len(days) and not in_flight(records)

        with running_daemon(sandbox, workspace, root / "daemon.log") as daemon:
            wait_until(drained, deadline, f"the backfill of {len(days)} partitions to finish", daemon,
                       lambda: f"runs by status {status_counts(instance.get_run_records())}", poll_seconds=3.0)
            records = instance.get_run_records()
        spans = [(r.start_time, r.end_time) for r in records if r.start_time and r.end_time]
        steps = step_intervals(instance, records)
        step_processes = sum(len(instance.all_logs(r.dagster_run.run_id,
                                                   of_type=dg.DagsterEventType.STEP_WORKER_STARTING))
                             for r in records)
        with duckdb.connect(str(sandbox.warehouse), read_only=True) as con:
            ingested_days = con.execute("SELECT count(DISTINCT day) FROM raw_events").fetchall()[0][0]
        return WritersOutcome(
            job=job, partitions=tuple(days),
            run_partitions=tuple(sorted(r.dagster_run.tags.get("dagster/partition", "") for r in records)),
            runs=status_counts(records), failed_runs=tuple(failed_runs(instance, records)), launch_s=launch_s,
            elapsed_s=(max(end for _, end in spans) - min(start for start, _ in spans)) if spans else 0.0,
            max_parallel_runs=max_overlap(spans), max_parallel_steps=max_overlap(steps), steps=len(steps),
            step_processes=step_processes, ingested_days=int(ingested_days),
            lock_errors=tuple(lock_errors(instance, records, [*compute_log_files(sandbox), root / "daemon.log"])),
            doctor=check_invariants(sandbox.warehouse, sandbox.data_dir))
    finally:
        instance.dispose()
