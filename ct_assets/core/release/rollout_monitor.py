"""The daily judgement of an active rollout: the new and the previous model on the same recently
labelled rows (a shadow comparison) plus the day's complaint-rate ratio."""

from __future__ import annotations

from pathlib import Path

import duckdb

from ct_assets.core.data import schema
from ct_assets.core.release.rollout import advance_rollout
from ct_assets.core.release.rollout_comparison import compare_live
from ct_assets.core.release.rollout_store import RolloutStep, active_rollout
from ct_assets.core.training.artifacts import load_model
from ct_assets.core.training.model import predict_proba
from ct_assets.core.training.preprocessing import MODEL_INPUTS


def _complaints_ratio(con: duckdb.DuckDBPyConnection, day: str) -> float | None:
    exists = con.execute("SELECT count(*) FROM information_schema.tables WHERE table_name = 'complaint_results'"
                         ).fetchall()[0][0]
    if not exists:
        return None
    rows = con.execute("SELECT rate_ratio FROM complaint_results WHERE partition = ?", [day]).fetchall()
    return float(rows[0][0]) if rows and rows[0][0] is not None else None


def monitor_rollout_day(con: duckdb.DuckDBPyConnection, models_dir: Path, day: str, recent_days: int = 3,
                        tolerance: float = 0.02) -> RolloutStep | None:
    """Judge the active rollout on ``day``.

    Returns the recorded step (advance / hold / complete / rollback), or None without a rollout.
    """
    rollout = active_rollout(con)
    if rollout is None:
        return None
    recent = con.execute(
        "SELECT f.*, l.is_fraud FROM labels l JOIN features f USING (event_id) "
        "WHERE l.arrival_day BETWEEN CAST(? AS DATE) - CAST(? AS INTEGER) + 1 AND CAST(? AS DATE) "
        "ORDER BY f.event_id", [day, recent_days, day]).fetchdf()
    inputs = recent[list(MODEL_INPUTS)]
    live = compare_live(
        recent[schema.FRAUD_LABEL_COLUMN].to_numpy(),
        predict_proba(load_model(models_dir, rollout.model_id), inputs),
        predict_proba(load_model(models_dir, rollout.previous_model_id), inputs),
        _complaints_ratio(con, day), tolerance=tolerance)
    return advance_rollout(con, day, live)
