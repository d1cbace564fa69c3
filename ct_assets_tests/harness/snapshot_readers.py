"""Analysts reading `snapshots/latest.duckdb` while the pipeline publishes new ones.

Each reader is its own process (as an analyst's notebook is): it opens the snapshot read-only, runs a
consistency query, keeps the connection across a pause (a publication may rename a new file over
the path meanwhile) and runs it again on the same connection, then closes and starts over. A failed
open or query counts as a failure; a snapshot whose content contradicts itself counts as torn.

Example::

    with SnapshotReaders(data_dir / "snapshots" / "latest.duckdb", count=8) as readers:
        ...  # the pipeline runs
        stats = readers.stop()
    assert stats.failed == 0 and stats.torn == 0
"""

from __future__ import annotations

import multiprocessing
import os
import queue
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Self

import duckdb

EXAMPLES_KEPT = 10  # problem messages each reader reports back (the counts are complete)


@dataclass(frozen=True)
class SnapshotCheck:
    """One consistency query: the snapshot's version (publication time and row counts) and what is wrong."""

    version: str
    problems: tuple[str, ...]


@dataclass(frozen=True)
class ReaderStats:
    """What the readers saw, summed over all of them."""

    readers: int
    queries: int  # consistency queries completed
    failed: int  # opens or queries that raised
    torn: int  # consistency queries that found a contradiction
    versions: frozenset[str]  # distinct snapshots observed
    waits: int  # polls before the first snapshot was published (not failures)
    examples: tuple[str, ...]  # the first failure / torn messages, for an assertion message


def check_snapshot(con: duckdb.DuckDBPyConnection) -> SnapshotCheck:
    """Check a snapshot against itself: the row counts its ``snapshot_info`` records, one publication
    time, at most one production model, the production pointer where the last promote/rollback put
    it, and every deployment naming registered models."""
    tables = {name for (name,) in con.execute(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = 'main'").fetchall()}
    if "snapshot_info" not in tables:
        return SnapshotCheck("", ("no snapshot_info table: not a complete snapshot",))
    info = con.execute("SELECT table_name, row_count, published_at FROM snapshot_info ORDER BY table_name").fetchall()
    problems: list[str] = []
    published = sorted({str(at) for _, _, at in info})
    if len(published) > 1:
        problems.append(f"snapshot_info mixes publications {published}")
    listed = {table for table, _, _ in info}
    problems.extend(f"{table} is in the file but not in snapshot_info"
                    for table in sorted(tables - listed - {"snapshot_info"}))
    counts = []
    for table, expected, _ in info:
        if not table.isidentifier() or table not in tables:
            problems.append(f"snapshot_info lists {table!r}, which the file does not hold")
            continue
        actual = con.execute(f'SELECT count(*) FROM "{table}"').fetchall()[0][0]
        counts.append(f"{table}={actual}")
        if actual != expected:
            problems.append(f"{table} has {actual} rows, snapshot_info says {expected}")
    if "model_registry" in tables:
        production = [m for (m,) in con.execute(
            "SELECT model_id FROM model_registry WHERE status = 'production' ORDER BY model_id").fetchall()]
        if len(production) > 1:
            problems.append(f"{len(production)} production models: {production}")
        if "deployments" in tables:
            unknown = con.execute(
                "SELECT DISTINCT named FROM (SELECT model_id AS named FROM deployments UNION ALL "
                "SELECT previous_model_id FROM deployments WHERE previous_model_id IS NOT NULL) "
                "WHERE named NOT IN (SELECT model_id FROM model_registry) ORDER BY named").fetchall()
            problems.extend(f"a deployment names {named}, which the registry does not hold" for (named,) in unknown)
            moves = con.execute("SELECT model_id FROM deployments WHERE action IN ('promote', 'rollback') "
                                "ORDER BY deployment_id DESC LIMIT 1").fetchall()
            last_moved = moves[0][0] if moves else None
            if (production[0] if production else None) != last_moved:
                problems.append(f"the registry serves {production or 'no model'}, the last promote/rollback "
                                f"deployed {last_moved or 'no model'}")
    version = f"{published[0] if published else '?'} {' '.join(counts)}"
    return SnapshotCheck(version, tuple(problems))


def _read_until_stopped(path: str, started: multiprocessing.synchronize.Semaphore,
                        stop: multiprocessing.synchronize.Event, results: multiprocessing.Queue,
                        pause_seconds: float) -> None:
    """One analyst: read and check the snapshot until ``stop`` is set, then put the tallies on ``results``."""
    started.release()
    queries = failed = torn = waits = 0
    versions: set[str] = set()
    examples: list[str] = []

    def note(message: str) -> None:
        if len(examples) < EXAMPLES_KEPT:
            examples.append(f"reader {os.getpid()}: {message}")

    while not stop.is_set():
        if not os.path.exists(path):
            if versions:
                failed += 1
                note("the snapshot vanished after it had been published")
            else:
                waits += 1  # nothing published yet: wait for the first snapshot
            time.sleep(pause_seconds)
            continue
        try:
            with duckdb.connect(path, read_only=True) as con:
                first = check_snapshot(con)
                time.sleep(pause_seconds)  # hold the file while a new snapshot may be renamed over it
                second = check_snapshot(con)
        except duckdb.Error as exc:
            failed += 1
            note(f"{type(exc).__name__}: {exc}")
            continue
        queries += 2
        for check in (first, second):
            if check.problems:
                torn += 1
                note("; ".join(check.problems))
        if first.version != second.version:
            torn += 1
            note(f"the snapshot changed under an open connection: {first.version!r} -> {second.version!r}")
        versions.add(first.version)
        time.sleep(pause_seconds)
    results.put({"queries": queries, "failed": failed, "torn": torn, "waits": waits,
                 "versions": sorted(versions), "examples": examples})


class SnapshotReaders:
    """``count`` reader processes checking ``snapshot`` until :meth:`stop` (a context manager)."""

    def __init__(self, snapshot: Path, count: int = 8, pause_seconds: float = 0.2) -> None:
        if count < 1:
            raise ValueError(f"count must be at least 1, got {count}")
        self._snapshot, self._count, self._pause = snapshot, count, pause_seconds
        # spawn: a reader starts from a clean interpreter, like an analyst's process.
        self._context = multiprocessing.get_context("spawn")
        self._started = self._context.Semaphore(0)
        self._stop = self._context.Event()
        self._results: multiprocessing.Queue = self._context.Queue()
        self._processes: list[multiprocessing.process.BaseProcess] = []
        self._stats: ReaderStats | None = None

    def __enter__(self) -> Self:
        for _ in range(self._count):
            process = self._context.Process(target=_read_until_stopped, daemon=True,
                                            args=(str(self._snapshot), self._started, self._stop, self._results,
                                                  self._pause))
            process.start()
            self._processes.append(process)
        return self

    def wait_until_reading(self, timeout: float = 60.0) -> None:
        """Block until every reader process is up and polling (spawning takes seconds on a busy machine)."""
        deadline = time.monotonic() + timeout
        for _ in self._processes:
            if not self._started.acquire(timeout=max(0.1, deadline - time.monotonic())):
                raise TimeoutError(f"the {self._count} snapshot readers did not all start within {timeout:g} s")

    def stop(self, timeout: float = 60.0) -> ReaderStats:
        """Stop every reader and sum what they saw (idempotent)."""
        if self._stats is not None:
            return self._stats
        self._stop.set()
        tallies = []
        deadline = time.monotonic() + timeout
        for _ in self._processes:
            try:
                tallies.append(self._results.get(timeout=max(0.1, deadline - time.monotonic())))
            except queue.Empty:
                break
        for process in self._processes:
            process.join(timeout=max(0.1, deadline - time.monotonic()))
        missing = len(self._processes) - len(tallies)
        self._stats = ReaderStats(
            readers=len(self._processes),
            queries=sum(t["queries"] for t in tallies),
            failed=sum(t["failed"] for t in tallies) + missing,
            torn=sum(t["torn"] for t in tallies),
            versions=frozenset(v for t in tallies for v in t["versions"]),
            waits=sum(t["waits"] for t in tallies),
            examples=tuple(e for t in tallies for e in t["examples"])
            + ((f"{missing} reader(s) never reported back",) if missing else ()),
        )
        return self._stats

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self._stop.set()
        for process in self._processes:
            process.join(timeout=5)
            if process.is_alive():
                process.kill()
                process.join(timeout=5)
