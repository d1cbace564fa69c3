"""A throwaway deployment: a DAGSTER_HOME holding a copy of the repo's dagster.yaml and a data directory.

The repo's dagster.yaml brings SQLite storage, the run queue's limits and the `duckdb_warehouse` pool.
Days land with the real CLI (`ct simulate`); the daemon runs as a subprocess in its own process group,
so stopping it also stops its code servers and run workers.
"""

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import dagster as dg

from ct_assets.core.data.layout import DataLayout
from ct_assets_tests.harness.processes import stop_process_group

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
_LANDED = re.compile(r"^landed (\d{4}-\d{2}-\d{2}) ")


@dataclass(frozen=True)
class Sandbox:
    """A DAGSTER_HOME and a data directory under ``root``, and the environment that points at them."""

    root: Path

    @property
    def layout(self) -> DataLayout:
        return DataLayout.from_root(self.root / "data", dagster_home=self.root / "dagster_home")

    @property
    def home(self) -> Path:
        return self.layout.dagster_home

    @property
    def data_dir(self) -> Path:
        return self.layout.root

    @property
    def warehouse(self) -> Path:
        return self.layout.warehouse_path

    @property
    def snapshot(self) -> Path:
        return self.layout.snapshot_path

    @property
    def env(self) -> dict[str, str]:
        return {**os.environ, **self.layout.environment()}

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


def compute_log_files(sandbox: Sandbox) -> list[Path]:
    """The captured stdout/stderr of every step (where a lock error a step swallowed would still show)."""
    storage = sandbox.home / "storage"
    return sorted(p for p in storage.rglob("*") if p.is_file()) if storage.is_dir() else []
