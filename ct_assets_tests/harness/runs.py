"""What the daemon's runs left in a Dagster instance: statuses, failures, lock errors, overlaps."""

from collections.abc import Iterable, Sequence
from pathlib import Path

import dagster as dg

LOCK_ERRORS = ("Could not set lock on file", "Conflicting lock")
IN_FLIGHT = frozenset({"QUEUED", "NOT_STARTED", "STARTING", "STARTED", "CANCELING"})


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
