"""`ct doctor`: check the invariants a crash or a bug could break, and clean up safe leftovers.

Checks (each a :class:`Problem` with a stable ``code``):

* production pointer: at most one production model, and it is the model of the last promote or
  rollback in ``deployments``; every pointer move starts from where the previous one ended.
* artifacts: every registered model's directory exists, its weights hash matches its manifest, its
  id and the registry's hash; a model directory the registry does not know is a warning.
* temp leftovers: dot-prefixed temporary files of an interrupted model write or snapshot publish.
* warehouse: no duplicate event ids, label rows, complaint days or feature rows.
* analyst snapshot: opens read-only, its row counts match its own ``snapshot_info``, its models exist
  in the live registry, its production model was deployed and its artifact verifies (serving reads it).
* decisions and lineage: decision outcomes, parents, deployments and rollouts name known models.
* impossible states: a retired model that never served, a rejected one never rejected nor rolled
  back, a candidate left staged with a failed gate (a crash between gating and rejecting), two
  active rollouts.
* landing: entries the day listing ignores (bad dates, symlinks) are warnings.

The live database is opened read-only and held only for the warehouse queries (a DuckDB file takes
one writer *or* readers, so a long hold would stall the pipeline); artifacts are hashed after it is
released. :func:`remove_temp_leftovers` deletes only the temporary names the writers use, and only
when older than a minimum age, so it cannot race a writer that is still busy.

Example::

    report = check_invariants("data/warehouse.duckdb", "data")
    print(report.render()); sys.exit(0 if report.ok else 1)
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path

import duckdb

from ct_assets.core.common import has_table
from ct_assets.core.data.ingest import scan_landing
from ct_assets.core.data.layout import SNAPSHOT_NAME, DataLayout
from ct_assets.core.release.lineup import recorded_blocking_failures
from ct_assets.core.release.registry import ModelRecord, get_production, list_models
from ct_assets.core.training.artifacts import load_model, read_manifest

_MODEL_DIR = re.compile(r"^m-[0-9a-f]{12}$")
_MODEL_ID_IN_TEXT = re.compile(r"\bm-[0-9a-f]{12}\b")
# The temporary names the writers use (artifacts.save_model, snapshots.publish_snapshot).
_MODEL_TEMP = re.compile(r"^\.tmp-m-[0-9a-f]{12}-[0-9a-f]{32}$")
_SNAPSHOT_TEMP = re.compile(r"^\." + re.escape(SNAPSHOT_NAME) + r"\.\d+\.tmp(\.wal)?$")
_POINTER_MOVES = "action IN ('promote', 'rollback')"


@dataclass(frozen=True)
class Problem:
    """One broken invariant (``error``) or something worth knowing that breaks nothing (``warning``)."""

    code: str
    message: str
    severity: str = "error"


@dataclass(frozen=True)
class DoctorReport:
    """Every problem found, and the names of the checks that ran."""

    problems: tuple[Problem, ...]
    checks: tuple[str, ...]

    @property
    def errors(self) -> tuple[Problem, ...]:
        return tuple(p for p in self.problems if p.severity == "error")

    @property
    def warnings(self) -> tuple[Problem, ...]:
        return tuple(p for p in self.problems if p.severity == "warning")

    @property
    def ok(self) -> bool:
        """No broken invariant (warnings allowed)."""
        return not self.errors

    @property
    def codes(self) -> list[str]:
        return sorted(p.code for p in self.problems)

    def render(self) -> str:
        """Human-readable summary, one line per problem, errors first."""
        checks = f"{len(self.checks)} checks ({', '.join(self.checks)})"
        if not self.problems:
            return f"ct doctor: clean after {checks}"
        lines = [f"  {p.severity.upper():7} {p.code}: {p.message}" for p in (*self.errors, *self.warnings)]
        return "\n".join([f"ct doctor: {len(self.errors)} error(s), {len(self.warnings)} warning(s) after {checks}",
                           *lines])


@dataclass(frozen=True)
class _Facts:
    """What the file checks need from the warehouse, read before the connection is released."""

    models: tuple[ModelRecord, ...]
    deployed: frozenset[str]  # models a promote or rollback ever put into production


def _read_facts(con: duckdb.DuckDBPyConnection) -> _Facts:
    deployed = frozenset(r[0] for r in con.execute(
        f"SELECT DISTINCT model_id FROM deployments WHERE {_POINTER_MOVES}").fetchall()) \
        if has_table(con, "deployments") else frozenset()
    return _Facts(tuple(_registered(con)), deployed)


def _count(con: duckdb.DuckDBPyConnection, sql: str, params: list[object] | None = None) -> int:
    return int(con.execute(sql, params or []).fetchall()[0][0])


def _check_production_pointer(con: duckdb.DuckDBPyConnection) -> list[Problem]:
    if not has_table(con, "model_registry"):
        return []
    production = [r[0] for r in con.execute(
        "SELECT model_id FROM model_registry WHERE status = 'production' ORDER BY model_id").fetchall()]
    if len(production) > 1:
        return [Problem("multiple_production", f"{len(production)} models are in production: {production}")]
    moves = con.execute(f"SELECT deployment_id, model_id, previous_model_id FROM deployments WHERE {_POINTER_MOVES} "
                        "ORDER BY deployment_id").fetchall() if has_table(con, "deployments") else []
    problems = []
    serving = production[0] if production else None
    last = moves[-1][1] if moves else None
    if serving != last:
        problems.append(Problem("production_pointer_mismatch",
                                f"registry says {serving or 'no model'} is in production but the last promote/"
                                f"rollback in deployments put {last or 'no model'} there"))
    for (_, before, _), (deployment_id, model_id, previous) in pairwise(moves):
        if previous != before:
            problems.append(Problem("deployment_chain_broken",
                                    f"deployment {deployment_id} moved production {previous} -> {model_id}, but "
                                    f"{before} was serving"))
    return problems


def _registered(con: duckdb.DuckDBPyConnection) -> list[ModelRecord]:
    return list_models(con) if has_table(con, "model_registry") else []


def _check_artifacts(facts: _Facts, layout: DataLayout) -> list[Problem]:
    models_dir = layout.models_dir
    problems = []
    for record in facts.models:
        try:
            load_model(models_dir, record.model_id)
            manifest_hash = read_manifest(models_dir, record.model_id)["weights_sha256"]
        except ValueError as exc:
            problems.append(Problem("artifact_invalid", f"{record.model_id} ({record.status}): {exc}"))
            continue
        if record.weights_sha256 is not None and record.weights_sha256 != manifest_hash:
            problems.append(Problem("registry_hash_mismatch",
                                    f"{record.model_id}: registry records weights sha256 {record.weights_sha256}, "
                                    f"the stored manifest {manifest_hash}"))
    known = {r.model_id for r in facts.models}
    if models_dir.is_dir():
        for entry in sorted(models_dir.iterdir()):
            if _MODEL_DIR.match(entry.name) and entry.name not in known:
                problems.append(Problem("orphan_artifact", f"{entry} is stored but not registered (a run stopped "
                                        "between storing and registering; re-running it registers it)", "warning"))
    return problems


def find_temp_leftovers(data_dir: str | Path) -> list[Path]:
    """Temporary files/directories an interrupted model write or snapshot publish left behind."""
    layout = DataLayout.from_root(data_dir)
    found = []
    for directory, pattern in ((layout.models_dir, _MODEL_TEMP), (layout.snapshots_dir, _SNAPSHOT_TEMP)):
        if directory.is_dir():
            found.extend(entry for entry in sorted(directory.iterdir()) if pattern.match(entry.name))
    return found


def _age_seconds(path: Path, now: float) -> float:
    return now - path.lstat().st_mtime


def _check_temp_leftovers(facts: _Facts, layout: DataLayout) -> list[Problem]:
    now = time.time()
    return [Problem("temp_leftover", f"{path} ({_age_seconds(path, now):.0f} s old) was left by an interrupted "
                                     "write; `ct doctor --repair` removes it once older than --min-age-seconds")
            for path in find_temp_leftovers(layout.root)]


def remove_temp_leftovers(data_dir: str | Path, min_age_seconds: float = 300.0) -> list[Path]:
    """Delete the temporary leftovers older than ``min_age_seconds``; return what was deleted.

    Only the writers' own temporary names are touched (never a model, a snapshot or landing data),
    and a young one is kept: it may belong to a writer that is still running.
    """
    import shutil

    now = time.time()
    removed = []
    for path in find_temp_leftovers(data_dir):
        if _age_seconds(path, now) < min_age_seconds:
            continue
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink()
        removed.append(path)
    return removed


def _check_duplicates(con: duckdb.DuckDBPyConnection) -> list[Problem]:
    keys = {"raw_events": ("event_id", "duplicate_event_ids"), "labels": ("event_id", "duplicate_labels"),
            "complaints": ("day", "duplicate_complaint_days"), "features": ("event_id", "duplicate_features")}
    problems = []
    for table, (key, code) in keys.items():
        if not has_table(con, table):
            continue
        duplicated = _count(con, f"SELECT count(*) FROM (SELECT {key} FROM {table} GROUP BY {key} "
                                 "HAVING count(*) > 1)")
        if duplicated:
            problems.append(Problem(code, f"{duplicated} {key} value(s) occur more than once in {table}"))
    return problems


def _check_snapshot(facts: _Facts, layout: DataLayout) -> list[Problem]:
    path = layout.snapshot_path
    if not path.exists():
        return []
    try:
        snapshot = duckdb.connect(str(path), read_only=True)
    except duckdb.Error as exc:
        return [Problem("snapshot_unreadable", f"{path}: {exc}")]
    with snapshot:
        if not has_table(snapshot, "snapshot_info"):
            return [Problem("snapshot_inconsistent", f"{path} has no snapshot_info table: not a complete snapshot")]
        problems = []
        for table, expected in snapshot.execute("SELECT table_name, row_count FROM snapshot_info").fetchall():
            present = table.isidentifier() and has_table(snapshot, table)
            actual = _count(snapshot, f'SELECT count(*) FROM "{table}"') if present else None
            if actual != expected:
                problems.append(Problem("snapshot_inconsistent",
                                        f"{path}: {table} has {actual} rows, snapshot_info says {expected}"))
        try:
            serving = get_production(snapshot)
        except ValueError as exc:
            return [*problems, Problem("snapshot_multiple_production", f"{path}: {exc}")]
        snapshot_models = {r.model_id for r in _registered(snapshot)}
    live_models = {r.model_id for r in facts.models}
    for model_id in sorted(snapshot_models - live_models):
        problems.append(Problem("snapshot_unknown_model", f"{path} lists {model_id}, the live registry does not"))
    if serving is not None:
        if serving.model_id not in facts.deployed:
            problems.append(Problem("snapshot_production_never_deployed",
                                    f"{path} serves {serving.model_id}, which no promote/rollback ever deployed"))
        try:
            load_model(layout.models_dir, serving.model_id)
        except ValueError as exc:
            problems.append(Problem("snapshot_serving_artifact_invalid",
                                    f"{path} serves {serving.model_id}, whose artifact does not verify: {exc}"))
    return problems


def _check_references(con: duckdb.DuckDBPyConnection) -> list[Problem]:
    known = {r.model_id: r for r in _registered(con)}
    problems = []
    if has_table(con, "decisions"):
        for decision_id, outcome in con.execute(
                "SELECT decision_id, outcome FROM decisions WHERE outcome IS NOT NULL ORDER BY decision_id").fetchall():
            for model_id in _MODEL_ID_IN_TEXT.findall(outcome):
                if model_id not in known:
                    problems.append(Problem("decision_unknown_model",
                                            f"decision {decision_id} names {model_id} as its outcome; it is not registered"))
        decision_ids = {r[0] for r in con.execute("SELECT decision_id FROM decisions").fetchall()}
        for record in known.values():
            if record.decision_id and record.decision_id not in decision_ids:
                problems.append(Problem("model_unknown_decision", f"{record.model_id} names decision "
                                        f"{record.decision_id}, which is not in decisions", "warning"))
    for record in known.values():
        if record.parent_model_id and record.parent_model_id not in known:
            problems.append(Problem("unknown_parent", f"{record.model_id} names parent {record.parent_model_id}, "
                                    "which is not registered"))
    if has_table(con, "deployments"):
        for deployment_id, model_id, previous in con.execute(
                "SELECT deployment_id, model_id, previous_model_id FROM deployments ORDER BY deployment_id").fetchall():
            for named in (model_id, previous):
                if named is not None and named not in known:
                    problems.append(Problem("deployment_unknown_model",
                                            f"deployment {deployment_id} names {named}, which is not registered"))
    if has_table(con, "rollouts"):
        for rollout_id, model_id, previous in con.execute(
                "SELECT rollout_id, model_id, previous_model_id FROM rollouts ORDER BY rollout_id").fetchall():
            for named in (model_id, previous):
                if named not in known:
                    problems.append(Problem("rollout_unknown_model",
                                            f"rollout {rollout_id} names {named}, which is not registered"))
    return problems


def _check_states(con: duckdb.DuckDBPyConnection) -> list[Problem]:
    if not has_table(con, "model_registry"):
        return []
    served: set[str] = set()
    rejected_by_action: set[str] = set()
    if has_table(con, "deployments"):
        for model_id, previous, action in con.execute(
                "SELECT model_id, previous_model_id, action FROM deployments").fetchall():
            if action == "reject":
                rejected_by_action.add(model_id)
            else:
                served.update(m for m in (model_id, previous) if m is not None)
    problems = []
    for record in _registered(con):
        if record.status == "retired" and record.model_id not in served:
            problems.append(Problem("impossible_status", f"{record.model_id} is retired but never served"))
        if record.status == "rejected" and record.model_id not in served | rejected_by_action:
            problems.append(Problem("impossible_status",
                                    f"{record.model_id} is rejected but was neither rejected nor rolled back"))
        failed = recorded_blocking_failures(record.gate_results)
        if record.status in ("staging", "pending_approval") and failed:
            problems.append(Problem("failed_gates_not_rejected",
                                    f"{record.model_id} is {record.status} with failed gates {failed} (interrupted "
                                    f"before it was rejected): `ct reject {record.model_id}`"))
    if has_table(con, "rollouts"):
        active = [r[0] for r in con.execute("SELECT rollout_id FROM rollouts WHERE status = 'active'").fetchall()]
        if len(active) > 1:
            problems.append(Problem("multiple_active_rollouts", f"{len(active)} rollouts are active: {active}"))
    return problems


def _check_landing(facts: _Facts, layout: DataLayout) -> list[Problem]:
    return [Problem("landing_ignored", reason, "warning") for _, reason in scan_landing(layout.landing_dir).ignored]


# Checks that query the warehouse, then checks of files (run after the warehouse is released, so
# hashing artifacts never keeps the pipeline's writer waiting).
WAREHOUSE_CHECKS: dict[str, Callable[[duckdb.DuckDBPyConnection], list[Problem]]] = {
    "production_pointer": _check_production_pointer,
    "duplicates": _check_duplicates,
    "references": _check_references,
    "states": _check_states,
}
FILE_CHECKS: dict[str, Callable[[_Facts, DataLayout], list[Problem]]] = {
    "artifacts": _check_artifacts,
    "snapshot": _check_snapshot,
    "temp_leftovers": _check_temp_leftovers,
    "landing": _check_landing,
}


@contextmanager
def _connection(con_or_db_path: duckdb.DuckDBPyConnection | str | Path) -> Iterator[duckdb.DuckDBPyConnection]:
    if isinstance(con_or_db_path, duckdb.DuckDBPyConnection):
        yield con_or_db_path
        return
    path = Path(con_or_db_path)
    if path.exists():
        with duckdb.connect(str(path), read_only=True) as con:
            yield con
    else:
        with duckdb.connect() as con:  # nothing ingested yet: every table check finds nothing
            yield con


def check_invariants(con_or_db_path: duckdb.DuckDBPyConnection | str | Path, data_dir: str | Path) -> DoctorReport:
    """Run every check against the warehouse (a connection, or a path opened read-only) and ``data_dir``.

    A path is held only for the warehouse queries; the file checks run after it is closed.
    Raises ``duckdb.IOException`` when a path is locked by a running writer (retry later).
    """
    layout = DataLayout.from_root(data_dir)
    problems: list[Problem] = []
    with _connection(con_or_db_path) as con:
        for check in WAREHOUSE_CHECKS.values():
            problems.extend(check(con))
        facts = _read_facts(con)
    for file_check in FILE_CHECKS.values():
        problems.extend(file_check(facts, layout))
    return DoctorReport(tuple(problems), (*WAREHOUSE_CHECKS, *FILE_CHECKS))
