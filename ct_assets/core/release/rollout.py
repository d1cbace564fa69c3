"""Staged rollout of a newly promoted model, and *when* to roll it back.

After a promotion the new model serves a growing share of traffic (1% -> 5% -> 25% -> 100% by default)
while the previous model serves the rest; ``traffic_split`` picks the rows by a hash of their id, so the
same order always goes to the same model and a larger share only adds rows.

Each day :func:`advance_rollout` judges a :class:`LiveComparison`: both models scored on the same recently
labelled rows (a shadow comparison, so no per-row serving log is needed) plus the complaint-rate ratio
since the promotion. Verdicts:

* ``rollback``: the new model is worse than the previous one by more than the tolerance (with a paired
  bootstrap CI excluding "no worse"), or complaints rose beyond the allowed ratio. The caller then runs
  ``deployment.roll_back`` (a pointer swap, seconds), which alerts; this module only decides.
* ``advance`` / ``complete``: the step has lasted ``days_per_step`` days and the model held up; the last
  step (100%) is watched for one more step before the rollout is complete.
* ``hold``: too few labelled rows to judge, or the step is not over yet.

State lives in DuckDB: ``rollouts`` (one row per rollout, its current step) and ``rollout_steps`` (an
append-only log of every verdict, which also answers "what share did model X serve on day D").
Re-evaluating a day is idempotent: a day's advance, completion or rollback is recorded once (though a
degraded comparison later that day still rolls an active rollout back); a hold is re-judged, since newly
arrived labels may settle it.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass
from datetime import date, datetime
from typing import Any, Iterable

import duckdb
import numpy as np

from ct_assets.core.common import has_table, parse_iso_day, utc_now
from ct_assets.core.data.splits import holdout_mask
from ct_assets.core.release.gates import (
    _binary_labels,
    _check_metric,
    _higher_is_better,
    _metric_fn,
    _scores,
)
from ct_assets.core.release.registry import get_production

VERDICT_OK = "ok"
VERDICT_DEGRADED = "degraded"
VERDICT_INSUFFICIENT = "insufficient_data"
STEP_VERDICTS: tuple[str, ...] = ("start", "hold", "advance", "complete", "rollback", "superseded")
ROLLOUT_STATUSES: tuple[str, ...] = ("active", "completed", "rolled_back", "superseded")

# Copied into the analyst snapshot (core/ops/snapshots.py).
ANALYST_TABLES: tuple[str, ...] = ("rollouts", "rollout_steps")
_DDL = (
    f"""
    CREATE TABLE IF NOT EXISTS rollouts (
        rollout_id VARCHAR PRIMARY KEY,
        model_id VARCHAR NOT NULL,
        previous_model_id VARCHAR NOT NULL,
        steps JSON NOT NULL,
        days_per_step INTEGER NOT NULL,
        start_day DATE NOT NULL,
        status VARCHAR NOT NULL CHECK (status IN ({", ".join(repr(s) for s in ROLLOUT_STATUSES)})),
        step_index INTEGER NOT NULL,
        traffic_share DOUBLE NOT NULL,
        step_started_day DATE NOT NULL,
        reason VARCHAR NOT NULL,
        created_at TIMESTAMP NOT NULL
    )
    """,
    f"""
    CREATE TABLE IF NOT EXISTS rollout_steps (
        seq BIGINT PRIMARY KEY,
        rollout_id VARCHAR NOT NULL,
        day DATE NOT NULL,
        verdict VARCHAR NOT NULL CHECK (verdict IN ({", ".join(repr(v) for v in STEP_VERDICTS)})),
        step_index INTEGER NOT NULL,
        traffic_share DOUBLE NOT NULL,
        reason VARCHAR NOT NULL,
        live JSON,
        recorded_at TIMESTAMP NOT NULL
    )
    """,
)
_ROLLOUT_COLUMNS: tuple[str, ...] = ("rollout_id", "model_id", "previous_model_id", "steps", "days_per_step",
                                     "start_day", "status", "step_index", "traffic_share", "step_started_day",
                                     "reason", "created_at")


@dataclass(frozen=True)
class RolloutPlan:
    """Traffic shares of the new model, step by step (increasing, ending at 1.0), and days per step."""

    steps: tuple[float, ...] = (0.01, 0.05, 0.25, 1.0)
    days_per_step: int = 1

    def __post_init__(self) -> None:
        steps = tuple(self.steps)
        if not steps or not all(isinstance(s, (int, float)) and not isinstance(s, bool) for s in steps):
            raise ValueError(f"rollout steps must be a non-empty sequence of shares, got {self.steps!r}")
        if any(not 0.0 < s <= 1.0 for s in steps) or any(b <= a for a, b in zip(steps, steps[1:])):
            raise ValueError(f"rollout steps must increase strictly within (0, 1], got {steps!r}")
        if steps[-1] != 1.0:
            raise ValueError(f"the last rollout step must be 1.0 (all traffic), got {steps[-1]!r}")
        if isinstance(self.days_per_step, bool) or not isinstance(self.days_per_step, int) or self.days_per_step < 1:
            raise ValueError(f"days_per_step must be a positive integer, got {self.days_per_step!r}")
        object.__setattr__(self, "steps", tuple(float(s) for s in steps))


@dataclass(frozen=True)
class LiveComparison:
    """New vs previous model on the same recently labelled rows, and the complaint-rate ratio.

    ``degradation`` is how much worse the new model is (positive = worse, metric units) with its paired
    bootstrap interval ``[ci_low, ci_high]``; NaN when there was not enough data to compute it.
    """

    verdict: str  # "ok" | "degraded" | "insufficient_data"
    reason: str
    metric: str
    new_value: float
    previous_value: float
    degradation: float
    ci_low: float
    ci_high: float
    tolerance: float
    n_rows: int
    complaints_ratio: float | None
    max_complaints_ratio: float

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (non-finite numbers become None)."""
        return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in asdict(self).items()}


@dataclass(frozen=True)
class RolloutRecord:
    """One ``rollouts`` row: the rollout's plan and current step."""

    rollout_id: str
    model_id: str
    previous_model_id: str
    steps: tuple[float, ...]
    days_per_step: int
    start_day: date
    status: str
    step_index: int
    traffic_share: float
    step_started_day: date
    reason: str
    created_at: datetime


@dataclass(frozen=True)
class RolloutStep:
    """One verdict of a rollout on one day, and the traffic share of the new model from that day on."""

    rollout_id: str
    model_id: str
    previous_model_id: str
    day: date
    verdict: str  # one of STEP_VERDICTS
    step_index: int
    traffic_share: float
    reason: str
    live: dict[str, Any] | None


def ensure_rollout_tables(con: duckdb.DuckDBPyConnection) -> None:
    """Create ``rollouts`` and ``rollout_steps`` if they do not exist (idempotent)."""
    for statement in _DDL:
        con.execute(statement)


def traffic_split(event_ids: Iterable[object], share: float, salt: str) -> np.ndarray:
    """True for the rows the new model serves: ``sha256(salt:id)`` mapped to [0, 1) is below ``share``.

    Deterministic per id, independent of row order; raising ``share`` only adds rows. Use the rollout id
    as ``salt`` (not the holdout salt, or the new model would serve exactly the holdout rows).

    >>> traffic_split([1, 2, 3], 1.0, "ro-1").tolist(), traffic_split([1, 2, 3], 0.0, "ro-1").tolist()
    ([True, True, True], [False, False, False])
    """
    if isinstance(share, bool) or not isinstance(share, (int, float)) or not 0.0 <= share <= 1.0:
        raise ValueError(f"traffic share must be within [0, 1], got {share!r}")
    if not isinstance(salt, str) or not salt:
        raise ValueError("traffic split salt must be a non-empty string")
    ids = list(event_ids)
    if share in (0.0, 1.0):
        if any(i is None or (isinstance(i, float) and math.isnan(i)) for i in ids):
            raise ValueError("event_ids contain missing ids")
        return np.full(len(ids), share == 1.0, dtype=bool)
    return holdout_mask(ids, fraction=float(share), salt=salt)


def compare_live(
    y: Any,
    new_scores: Any,
    previous_scores: Any,
    complaints_ratio: float | None,
    metric: str = "auc",
    tolerance: float = 0.02,
    min_rows: int = 200,
    *,
    max_complaints_ratio: float = 1.5,
    n_boot: int = 200,
    confidence: float = 0.95,
    seed: int = 0,
) -> LiveComparison:
    """Compare the new and the previous model on the same labelled rows ``y`` (a shadow comparison).

    ``degraded`` when complaints rose to more than ``max_complaints_ratio`` times their pre-promotion
    rate (``complaints_ratio``; None = unknown, not judged), or when the new model is worse by more than
    ``tolerance`` (metric units) and the paired bootstrap ``confidence`` interval of the degradation lies
    above zero, so noise alone never rolls back. ``insufficient_data`` with fewer than ``min_rows`` rows
    (or one class, for AUC).

    Example: ``compare_live(y, new_p, old_p, complaints_ratio=1.1).verdict`` -> ``"ok"``.
    """
    _check_metric(metric)
    if isinstance(tolerance, bool) or not isinstance(tolerance, (int, float)) or not 0 <= tolerance < math.inf:
        raise ValueError(f"tolerance must be a finite number >= 0, got {tolerance!r}")
    if isinstance(min_rows, bool) or not isinstance(min_rows, int) or min_rows < 2:
        raise ValueError(f"min_rows must be an integer >= 2, got {min_rows!r}")
    if complaints_ratio is not None and (not isinstance(complaints_ratio, (int, float)) or math.isnan(complaints_ratio)
                                         or complaints_ratio < 0):
        raise ValueError(f"complaints_ratio must be a number >= 0 or None, got {complaints_ratio!r}")
    if not max_complaints_ratio >= 1.0:
        raise ValueError(f"max_complaints_ratio must be >= 1, got {max_complaints_ratio!r}")
    if n_boot < 1 or not 0.0 < confidence < 1.0:
        raise ValueError("need n_boot >= 1 and 0 < confidence < 1")

    labels = np.asarray(y).reshape(-1)
    n_rows = int(labels.shape[0])
    nan = float("nan")
    common = dict(metric=metric, tolerance=float(tolerance), n_rows=n_rows,
                  complaints_ratio=None if complaints_ratio is None else float(complaints_ratio),
                  max_complaints_ratio=float(max_complaints_ratio))
    values: dict[str, float] = dict(new_value=nan, previous_value=nan, degradation=nan, ci_low=nan, ci_high=nan)
    if n_rows:
        labels = _binary_labels(labels)
        new = _scores(new_scores, n_rows, "new_scores")
        previous = _scores(previous_scores, n_rows, "previous_scores")
        if n_rows >= min_rows:
            values = _paired_degradation(labels, new, previous, metric, n_boot, confidence, seed)

    complaints_rose = complaints_ratio is not None and complaints_ratio > max_complaints_ratio
    complaint_text = ("complaints unknown" if complaints_ratio is None else
                      f"complaints {complaints_ratio:.3g}x the pre-promotion rate (max {max_complaints_ratio:.3g}x)")
    if math.isnan(values["degradation"]):
        metric_text = (f"{n_rows} labelled rows < {min_rows} needed" if n_rows < min_rows
                       else f"{metric} undefined on {n_rows} rows (a single class)")
    else:
        metric_text = (f"{metric} new {values['new_value']:.4f} vs previous {values['previous_value']:.4f}: "
                       f"worse by {values['degradation']:+.4f} (tolerance {tolerance:.4f}), "
                       f"{confidence:.0%} CI [{values['ci_low']:+.4f}, {values['ci_high']:+.4f}], n={n_rows}")
    metric_worse = values["degradation"] > tolerance and values["ci_low"] > 0  # False when NaN
    if complaints_rose or metric_worse:
        why = [text for text, fired in ((metric_text, metric_worse), (complaint_text, complaints_rose)) if fired]
        verdict, reason = VERDICT_DEGRADED, "new model degraded: " + "; ".join(why)
    elif math.isnan(values["degradation"]):
        verdict, reason = VERDICT_INSUFFICIENT, f"cannot judge yet: {metric_text}; {complaint_text}"
    else:
        verdict, reason = VERDICT_OK, f"new model holds up: {metric_text}; {complaint_text}"
    return LiveComparison(verdict=verdict, reason=reason, **values, **common)  # type: ignore[arg-type]


def _paired_degradation(y: np.ndarray, new: np.ndarray, previous: np.ndarray, metric: str, n_boot: int,
                        confidence: float, seed: int) -> dict[str, float]:
    """Point degradation (positive = new worse) and its paired bootstrap interval; NaN if undefined."""
    score = _metric_fn(metric)
    sign = 1.0 if _higher_is_better(metric) else -1.0
    new_value, previous_value = score(y, new), score(y, previous)
    nan = float("nan")
    if math.isnan(new_value) or math.isnan(previous_value):
        return dict(new_value=new_value, previous_value=previous_value, degradation=nan, ci_low=nan, ci_high=nan)
    rng = np.random.default_rng(seed)
    boot = []
    for _ in range(n_boot):
        index = rng.integers(0, len(y), len(y))
        n, p = score(y[index], new[index]), score(y[index], previous[index])
        if not (math.isnan(n) or math.isnan(p)):
            boot.append(sign * (p - n))
    if not boot:
        return dict(new_value=new_value, previous_value=previous_value, degradation=nan, ci_low=nan, ci_high=nan)
    alpha = (1.0 - confidence) / 2.0
    ci_low, ci_high = (float(v) for v in np.quantile(boot, [alpha, 1.0 - alpha]))
    return dict(new_value=float(new_value), previous_value=float(previous_value),
                degradation=float(sign * (previous_value - new_value)), ci_low=ci_low, ci_high=ci_high)


def start_rollout(con: duckdb.DuckDBPyConnection, model_id: str, previous_model_id: str | None,
                  plan: RolloutPlan = RolloutPlan(), *, day: str) -> RolloutRecord:
    """Begin ramping ``model_id`` (just promoted) on ``day`` at the plan's first share; return the rollout.

    Idempotent: starting the same model over the same previous model again returns the active rollout.
    An active rollout of ``previous_model_id`` itself is closed as ``superseded`` (the pointer has moved
    on); any other active rollout must finish or roll back first.
    """
    _require_text(model_id, "model_id")
    if previous_model_id is None:
        raise ValueError(f"model {model_id} has no previous model: a first model serves all traffic, no rollout")
    _require_text(previous_model_id, "previous_model_id")
    if model_id == previous_model_id:
        raise ValueError(f"model {model_id} cannot be rolled out over itself")
    if not isinstance(plan, RolloutPlan):
        raise ValueError(f"plan must be a RolloutPlan, got {type(plan).__name__}")
    start = parse_iso_day(day)
    ensure_rollout_tables(con)
    active = active_rollout(con)
    if active is not None and (active.model_id, active.previous_model_id) == (model_id, previous_model_id):
        return active
    if active is not None and active.model_id != previous_model_id:
        raise ValueError(f"rollout {active.rollout_id} of model {active.model_id} is still active; "
                         "complete it or roll it back before starting another")
    rollout_id = "ro-" + hashlib.sha256(f"{model_id}|{previous_model_id}|{start}".encode()).hexdigest()[:12]
    reason = f"ramping {model_id} over {previous_model_id}: shares {list(plan.steps)}, {plan.days_per_step} day(s) each"
    con.execute("BEGIN TRANSACTION")
    try:
        if active is not None:
            superseded = f"superseded by rollout {rollout_id} of {model_id}: {active.model_id} serves the rest"
            _update_rollout(con, active.rollout_id, "superseded", active.step_index, 1.0, start, superseded)
            _append_step(con, active.rollout_id, start, "superseded", active.step_index, 1.0, superseded, None)
        con.execute(
            f"INSERT INTO rollouts ({', '.join(_ROLLOUT_COLUMNS)}) VALUES ({', '.join('?' for _ in _ROLLOUT_COLUMNS)})",
            [rollout_id, model_id, previous_model_id, json.dumps(list(plan.steps)), plan.days_per_step, start,
             "active", 0, plan.steps[0], start, reason, utc_now()],
        )
        _append_step(con, rollout_id, start, "start", 0, plan.steps[0], reason, None)
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    record = get_rollout(con, rollout_id)
    assert record is not None  # just written
    return record


def advance_rollout(con: duckdb.DuckDBPyConnection, day: str, live: LiveComparison) -> RolloutStep:
    """Judge the active rollout on ``day`` with ``live``: rollback, advance/complete, or hold (module docstring)."""
    if not isinstance(live, LiveComparison):
        raise ValueError(f"live must be a LiveComparison, got {type(live).__name__}")
    today = parse_iso_day(day)
    rollout = active_rollout(con)
    # A day moves a rollout once (a rollout that completed or rolled back today still answers for it),
    # except that degradation seen later the same day still rolls an active rollout back.
    latest = rollout or next(iter(reversed(_rollouts(con, "", []))), None)
    if latest is not None:
        recorded = _steps(con, "s.rollout_id = ? AND s.day = ? AND s.verdict IN ('advance', 'complete', 'rollback')",
                          [latest.rollout_id, today])
        if recorded and (rollout is None or live.verdict != VERDICT_DEGRADED):
            return recorded[-1]
    if rollout is None:
        raise ValueError("no active rollout to advance")
    if today < rollout.step_started_day:
        raise ValueError(f"day {today} is before the current step of rollout {rollout.rollout_id} "
                         f"began ({rollout.step_started_day})")

    index, share, started = rollout.step_index, rollout.traffic_share, rollout.step_started_day
    elapsed = (today - started).days
    if live.verdict == VERDICT_DEGRADED:
        verdict, status, share = "rollback", "rolled_back", 0.0
        reason = f"roll back to {rollout.previous_model_id}: {live.reason}"
    elif live.verdict == VERDICT_INSUFFICIENT:
        verdict, status, reason = "hold", "active", f"hold at {share:.0%}: {live.reason}"
    elif elapsed < rollout.days_per_step:
        verdict, status, reason = "hold", "active", (f"hold at {share:.0%}: step {index + 1} has run {elapsed} of "
                                                    f"{rollout.days_per_step} day(s); {live.reason}")
    elif index == len(rollout.steps) - 1:
        verdict, status, reason = "complete", "completed", f"rollout complete at 100%: {live.reason}"
    else:
        index, share, started = index + 1, rollout.steps[index + 1], today
        verdict, status, reason = "advance", "active", f"advance to {share:.0%}: {live.reason}"

    con.execute("BEGIN TRANSACTION")
    try:
        # A hold is re-judged on re-evaluation (labels may have arrived): replace the day's earlier hold.
        con.execute("DELETE FROM rollout_steps WHERE rollout_id = ? AND day = ? AND verdict = 'hold'",
                    [rollout.rollout_id, today])
        _update_rollout(con, rollout.rollout_id, status, index, share, started, reason)
        _append_step(con, rollout.rollout_id, today, verdict, index, share, reason, live.to_dict())
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    return _steps(con, "s.rollout_id = ? AND s.day = ?", [rollout.rollout_id, today])[-1]


def current_traffic_share(con: duckdb.DuckDBPyConnection, model_id: str, day: str) -> float:
    """Share of traffic ``model_id`` serves on ``day``.

    From the latest rollout verdict recorded on or before ``day`` that involves the model: the step's
    share for the model being rolled out, the rest for the previous model (before its first rollout, a
    model ramped in served nothing and the model it replaced everything). A model no rollout names (e.g.
    the first model, promoted without a ramp) serves everything if it is the production model now.
    """
    _require_text(model_id, "model_id")
    as_of = parse_iso_day(day)
    if has_table(con, "rollout_steps"):
        rows = con.execute(
            "SELECT r.model_id, s.traffic_share, s.day <= ? FROM rollout_steps s "
            "JOIN rollouts r ON r.rollout_id = s.rollout_id WHERE r.model_id = ? OR r.previous_model_id = ? "
            "ORDER BY s.day, s.seq", [as_of, model_id, model_id]).fetchall()
        if rows:
            past = [row for row in rows if row[2]]
            if not past:
                # Before its first rollout: a model ramped in served nothing, the model it replaced everything.
                return 0.0 if rows[0][0] == model_id else 1.0
            new_model_id, share, _ = past[-1]
            return float(share) if new_model_id == model_id else 1.0 - float(share)
    if not has_table(con, "model_registry"):
        return 0.0
    production = get_production(con)
    return 1.0 if production is not None and production.model_id == model_id else 0.0


def get_rollout(con: duckdb.DuckDBPyConnection, rollout_id: str) -> RolloutRecord | None:
    """The rollout with ``rollout_id``, or None."""
    rows = _rollouts(con, "WHERE rollout_id = ?", [rollout_id])
    return rows[0] if rows else None


def active_rollout(con: duckdb.DuckDBPyConnection) -> RolloutRecord | None:
    """The rollout currently ramping, or None (at most one is active)."""
    rows = _rollouts(con, "WHERE status = 'active'", [])
    if len(rows) > 1:
        raise ValueError(f"rollouts are inconsistent: {len(rows)} active rollouts")
    return rows[0] if rows else None


def list_rollout_steps(con: duckdb.DuckDBPyConnection, rollout_id: str) -> list[RolloutStep]:
    """Every recorded verdict of a rollout, oldest first."""
    return _steps(con, "s.rollout_id = ?", [rollout_id])


def _rollouts(con: duckdb.DuckDBPyConnection, where: str, params: list[Any]) -> list[RolloutRecord]:
    if not has_table(con, "rollouts"):
        return []
    rows = con.execute(f"SELECT {', '.join(_ROLLOUT_COLUMNS)} FROM rollouts {where} ORDER BY created_at",
                       params).fetchall()
    records = []
    for row in rows:
        values = dict(zip(_ROLLOUT_COLUMNS, row))
        values["steps"] = tuple(json.loads(values["steps"]))
        records.append(RolloutRecord(**values))
    return records


def _steps(con: duckdb.DuckDBPyConnection, condition: str, params: list[Any]) -> list[RolloutStep]:
    """Steps matching ``condition`` (over alias ``s`` = rollout_steps), oldest first."""
    if not has_table(con, "rollout_steps"):
        return []
    rows = con.execute(
        "SELECT s.rollout_id, r.model_id, r.previous_model_id, s.day, s.verdict, s.step_index, s.traffic_share, "
        f"s.reason, s.live FROM rollout_steps s JOIN rollouts r ON r.rollout_id = s.rollout_id WHERE {condition} "
        "ORDER BY s.seq", params).fetchall()
    return [RolloutStep(*row[:8], live=None if row[8] is None else json.loads(row[8])) for row in rows]


def _update_rollout(con: duckdb.DuckDBPyConnection, rollout_id: str, status: str, step_index: int,
                    traffic_share: float, step_started_day: date, reason: str) -> None:
    con.execute("UPDATE rollouts SET status = ?, step_index = ?, traffic_share = ?, step_started_day = ?, reason = ? "
                "WHERE rollout_id = ?", [status, step_index, traffic_share, step_started_day, reason, rollout_id])


def _append_step(con: duckdb.DuckDBPyConnection, rollout_id: str, day: date, verdict: str, step_index: int,
                 traffic_share: float, reason: str, live: dict[str, Any] | None) -> None:
    # Writers to the live database are serialized, so max + 1 inside the transaction is unique.
    seq = con.execute("SELECT coalesce(max(seq), 0) + 1 FROM rollout_steps").fetchall()[0][0]
    con.execute(
        "INSERT INTO rollout_steps (seq, rollout_id, day, verdict, step_index, traffic_share, reason, live, "
        "recorded_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [seq, rollout_id, day, verdict, step_index, traffic_share, reason,
         None if live is None else json.dumps(live, sort_keys=True), utc_now()],
    )



def _require_text(value: object, what: str) -> None:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{what} must be a non-empty string, got {value!r}")
