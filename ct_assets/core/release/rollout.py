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

State lives in DuckDB (:mod:`ct_assets.core.release.rollout_store`); the comparison of the two models
is :mod:`ct_assets.core.release.rollout_comparison`. Re-evaluating a day is idempotent: a day's advance,
completion or rollback is recorded once (though a degraded comparison later that day still rolls an
active rollout back); a hold is re-judged, since newly arrived labels may settle it.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from typing import Iterable

import duckdb
import numpy as np

from ct_assets.core.common import has_table, parse_iso_day, utc_now
from ct_assets.core.data.splits import holdout_mask
from ct_assets.core.release.registry import get_production
from ct_assets.core.release.rollout_comparison import VERDICT_DEGRADED, VERDICT_INSUFFICIENT, LiveComparison
from ct_assets.core.release.rollout_store import (
    RolloutRecord,
    RolloutStep,
    active_rollout,
    append_step,
    ensure_rollout_tables,
    get_rollout,
    insert_rollout,
    select_rollouts,
    select_steps,
    update_rollout,
)


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
            update_rollout(con, active.rollout_id, "superseded", active.step_index, 1.0, start, superseded)
            append_step(con, active.rollout_id, start, "superseded", active.step_index, 1.0, superseded, None)
        insert_rollout(con, RolloutRecord(rollout_id, model_id, previous_model_id, plan.steps, plan.days_per_step,
                                          start, "active", 0, plan.steps[0], start, reason, utc_now()))
        append_step(con, rollout_id, start, "start", 0, plan.steps[0], reason, None)
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
    latest = rollout or next(iter(reversed(select_rollouts(con, "", []))), None)
    if latest is not None:
        recorded = select_steps(con, "s.rollout_id = ? AND s.day = ? "
                                "AND s.verdict IN ('advance', 'complete', 'rollback')", [latest.rollout_id, today])
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
        update_rollout(con, rollout.rollout_id, status, index, share, started, reason)
        append_step(con, rollout.rollout_id, today, verdict, index, share, reason, live.to_dict())
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    return select_steps(con, "s.rollout_id = ? AND s.day = ?", [rollout.rollout_id, today])[-1]


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


def _require_text(value: object, what: str) -> None:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{what} must be a non-empty string, got {value!r}")
