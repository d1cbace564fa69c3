"""A throwaway deployment driven by the real `dagster-daemon`, for the concurrency tests and benchmark.

A :class:`Sandbox` is a DAGSTER_HOME holding a copy of the repo's dagster.yaml (SQLite storage, the
run queue's limits, the `duckdb_warehouse` pool) and a data directory. Days land with the real CLI
(`ct simulate`); the daemon runs as a subprocess in its own process group, so stopping it also stops
its code servers and run workers. Nothing here calls an asset directly. Two scenarios return what
happened, for a test to assert and a benchmark to print:

* :func:`run_analysts_scenario`: the shipped workspace processes simulated days (sensors, automation,
  training, promotion) while analyst processes read the snapshot;
* :func:`run_writers_scenario`: a backfill of many day partitions, queued by one command.

Example::

    outcome = run_analysts_scenario(tmp_path, days=4, rows_per_day=2500, readers=8, deadline_s=420)
    assert outcome.readers.failed == outcome.readers.torn == 0
"""

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import duckdb

from ct_assets.core.ops.doctor import DoctorReport, check_invariants
from ct_assets.defs.tags import TRIGGER_TAG
from ct_assets_tests.reliability.snapshot_readers import ReaderStats, SnapshotReaders

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
LOCK_ERRORS = ("Could not set lock on file", "Conflicting lock")
IN_FLIGHT = frozenset({"QUEUED", "NOT_STARTED", "STARTING", "STARTED", "CANCELING"})
_LANDED = re.compile(r"^landed (\d{4}-\d{2}-\d{2}) ")


@dataclass(frozen=True)
class Sandbox:
    """A DAGSTER_HOME and a data directory under ``root``, and the environment that points at them."""

    root: Path

    @property
    def home(self) -> Path:
        return self.root / "dagster_home"

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    @property
    def warehouse(self) -> Path:
        return self.data_dir / "warehouse.duckdb"

    @property
    def snapshot(self) -> Path:
        return self.data_dir / "snapshots" / "latest.duckdb"

    @property
    def env(self) -> dict[str, str]:
        return {**os.environ, "DAGSTER_HOME": str(self.home), "CT_DATA_DIR": str(self.data_dir),
                "CT_DUCKDB_PATH": str(self.warehouse)}

    def instance(self) -> dg.DagsterInstance:
        """The sandbox's Dagster instance, as the daemon sees it (dispose it when done)."""
        return dg.DagsterInstance.from_config(str(self.home))


def create_sandbox(root: Path) -> Sandbox:
    """An empty deployment under ``root`` with the repo's dagster.yaml as its instance config."""
    sandbox = Sandbox(root)
    sandbox.home.mkdir(parents=True)
    sandbox.data_dir.mkdir(parents=True)
    shutil.copyfile(ROOT / "dagster.yaml", sandbox.home / "dagster.yaml")
    return sandbox


def run_command(command: list[str], env: dict[str, str], timeout: float) -> subprocess.CompletedProcess:
    """Run ``command`` in its own process group; on timeout the whole group is killed (a `dagster` CLI
    starts a code server of its own), then the timeout is raised."""
    process = subprocess.Popen(command, env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, start_new_session=True)
    try:
        stdout, stderr = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.communicate()
        raise
    return subprocess.CompletedProcess(command, process.returncode, stdout, stderr)


def land_days(sandbox: Sandbox, days: int, rows_per_day: int, scenario: str = "stable@0",
              timeout: float = 180.0) -> list[str]:
    """Land ``days`` more simulated days with `ct simulate` (served by the snapshot's model); their names."""
    done = run_command([sys.executable, "-m", "ct_assets.cli", "simulate", "--days", str(days),
                        "--rows-per-day", str(rows_per_day), "--scenario", scenario], sandbox.env, timeout)
    if done.returncode != 0:
        raise RuntimeError(f"ct simulate failed ({done.returncode}):\n{done.stderr[-3000:]}")
    landed = [m.group(1) for line in done.stdout.splitlines() if (m := _LANDED.match(line))]
    if len(landed) != days:
        raise RuntimeError(f"ct simulate landed {landed}, expected {days} days:\n{done.stdout}")
    return landed


def write_workspace(path: Path, module_name: str) -> Path:
    """A workspace file loading ``module_name`` (importable from the repo root) as one code location."""
    path.write_text(f"load_from:\n  - python_module:\n      module_name: {module_name}\n"
                    f"      working_directory: {ROOT}\n")
    return path


def stop_process_group(process: subprocess.Popen) -> None:
    """SIGTERM ``process``'s group (daemon, code servers, run workers), then SIGKILL whatever is left."""
    try:
        os.killpg(process.pid, signal.SIGTERM)
    except ProcessLookupError:
        pass
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        pass
    for _ in range(20):  # code servers and run workers exit shortly after the daemon
        try:
            os.killpg(process.pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.5)
    else:
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    if process.poll() is None:
        process.kill()
    process.wait(timeout=10)


@contextmanager
def running_daemon(sandbox: Sandbox, workspace: Path, log_path: Path) -> Iterator[subprocess.Popen]:
    """`dagster-daemon run -w workspace` on the sandbox, stopped with its whole process group on exit."""
    with log_path.open("w") as log:
        daemon = subprocess.Popen([str(BIN / "dagster-daemon"), "run", "-w", str(workspace)], env=sandbox.env,
                                  cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        yield daemon
    finally:
        stop_process_group(daemon)


def wait_until(condition: Callable[[], bool], deadline: float, what: str, daemon: subprocess.Popen | None = None,
               status: Callable[[], str] = lambda: "", poll_seconds: float = 2.0) -> None:
    """Poll ``condition`` until it holds; raise if ``deadline`` (time.monotonic) passes or the daemon dies.

    ``status`` describes the state for the error message (e.g. the runs by status).
    """
    while not condition():
        if daemon is not None and daemon.poll() is not None:
            raise RuntimeError(f"dagster-daemon exited ({daemon.returncode}) while waiting for {what}; {status()}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"gave up waiting for {what}; {status()}")
        time.sleep(poll_seconds)


def launch_backfill(sandbox: Sandbox, workspace: Path, job_name: str, partitions: Iterable[str],
                    timeout: float = 300.0) -> None:
    """`dagster job backfill`: one queued run per partition, all submitted in one command."""
    done = run_command([str(BIN / "dagster"), "job", "backfill", "-w", str(workspace), "-j", job_name,
                        "--partitions", ",".join(partitions), "--noprompt"], sandbox.env, timeout)
    if done.returncode != 0 or "Launched backfill job" not in done.stdout:
        raise RuntimeError(f"dagster job backfill failed ({done.returncode}):\n{done.stdout[-2000:]}\n"
                           f"{done.stderr[-3000:]}")


def status_counts(records: Iterable[dg.RunRecord]) -> dict[str, int]:
    """How many runs are in each status, e.g. {"SUCCESS": 12, "QUEUED": 3}."""
    counts: dict[str, int] = {}
    for record in records:
        counts[record.dagster_run.status.value] = counts.get(record.dagster_run.status.value, 0) + 1
    return counts


def in_flight(records: Iterable[dg.RunRecord]) -> bool:
    return any(record.dagster_run.status.value in IN_FLIGHT for record in records)


def lock_errors(instance: dg.DagsterInstance, records: Iterable[dg.RunRecord],
                files: Iterable[Path] = ()) -> list[str]:
    """Every DuckDB lock error in the runs' event logs (messages and error payloads) and in ``files``."""
    found = []
    for record in records:
        for entry in instance.all_logs(record.dagster_run.run_id):
            text = entry.message + (str(entry.dagster_event.event_specific_data) if entry.dagster_event else "")
            if any(error in text for error in LOCK_ERRORS):
                found.append(f"run {record.dagster_run.run_id[:8]}: {text[:300]}")
    for path in files:
        text = path.read_text(errors="replace") if path.is_file() else ""
        found.extend(f"{path}: {line[:300]}" for line in text.splitlines() if any(e in line for e in LOCK_ERRORS))
    return found


def compute_log_files(sandbox: Sandbox) -> list[Path]:
    """The captured stdout/stderr of every step (where a lock error a step swallowed would still show)."""
    storage = sandbox.home / "storage"
    return sorted(p for p in storage.rglob("*") if p.is_file()) if storage.is_dir() else []


def step_intervals(instance: dg.DagsterInstance, records: Iterable[dg.RunRecord]) -> list[tuple[float, float]]:
    """(start, end) wall times of every executed step: STEP_START to its STEP_SUCCESS / STEP_FAILURE."""
    intervals = []
    for record in records:
        started: dict[str, float] = {}
        for entry in instance.all_logs(record.dagster_run.run_id):
            kind = entry.dagster_event.event_type_value if entry.dagster_event else None
            if kind == "STEP_START" and entry.step_key:
                started[entry.step_key] = entry.timestamp
            elif kind in ("STEP_SUCCESS", "STEP_FAILURE") and entry.step_key in started:
                intervals.append((started.pop(entry.step_key), entry.timestamp))
    return intervals


def max_overlap(intervals: Sequence[tuple[float, float]]) -> int:
    """The largest number of [start, end) intervals open at one instant (0 for none)."""
    events = sorted([(start, 1) for start, _ in intervals] + [(end, -1) for _, end in intervals])
    running = peak = 0
    for _, step in events:
        running += step
        peak = max(peak, running)
    return peak


def failed_runs(instance: dg.DagsterInstance, records: Iterable[dg.RunRecord]) -> list[str]:
    """One line per run that did not succeed: id, status, tags that say what it was, first step error."""
    lines = []
    for record in records:
        run = record.dagster_run
        if run.status == dg.DagsterRunStatus.SUCCESS:
            continue
        errors = [entry.message for entry in instance.all_logs(run.run_id, of_type=dg.DagsterEventType.STEP_FAILURE)]
        tags = {k: v for k, v in run.tags.items() if k.startswith("ct/") or k in ("dagster/partition",
                                                                                  "dagster/sensor_name")}
        lines.append(f"{run.run_id[:8]} {run.status.value} {tags} {errors[:1]}")
    return lines


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
        workspace = write_workspace(root / "writers_workspace.yaml", "ct_assets_tests.reliability.writers_location")
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
