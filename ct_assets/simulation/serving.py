"""Serve the simulated traffic with the models the pipeline deployed, split as the rollout says.

The stream's clock reads the production pointer and the active rollout from the analysts'
read-only snapshot (never the live warehouse), so serving never contends with the pipeline's
writer. During a rollout the new model serves ``traffic_split(ids, share)`` of the orders and the
previous model the rest: the ramp has a real effect on served errors, complaints and labels.
"""

from __future__ import annotations

from pathlib import Path

import duckdb
import numpy as np
import pandas as pd

from ct_assets.core.data import schema
from ct_assets.core.data.features import features_from_events
from ct_assets.core.release.registry import get_production
from ct_assets.core.release.rollout import traffic_split
from ct_assets.core.release.rollout_store import active_rollout
from ct_assets.core.training.artifacts import load_model
from ct_assets.core.training.model import TrainedModel, predict_proba
from ct_assets.core.training.preprocessing import MODEL_INPUTS
from ct_assets.simulation.generation import ServingFn


def _tables(con: duckdb.DuckDBPyConnection) -> set[str]:
    return {name for (name,) in con.execute("SELECT table_name FROM information_schema.tables").fetchall()}


def serving_fn_from_snapshot(snapshot_path: Path, models_dir: Path) -> ServingFn | None:
    """A scoring function for raw events, or None while no model has been deployed yet."""
    if not snapshot_path.exists():
        return None
    with duckdb.connect(str(snapshot_path), read_only=True) as con:
        tables = _tables(con)
        production = get_production(con) if "model_registry" in tables else None
        rollout = active_rollout(con) if "rollouts" in tables else None
    if production is None:
        return None
    serving = load_model(models_dir, production.model_id)
    previous: TrainedModel | None = None
    share, salt = 1.0, ""
    if rollout is not None and rollout.model_id == production.model_id:
        previous = load_model(models_dir, rollout.previous_model_id)
        share, salt = rollout.traffic_share, rollout.rollout_id

    def serve(events: pd.DataFrame) -> np.ndarray:
        features = features_from_events(events).set_index(schema.ID_COLUMN).loc[events[schema.ID_COLUMN]]
        inputs = features.reset_index()[list(MODEL_INPUTS)]
        scores = predict_proba(serving, inputs)
        if previous is not None:
            served_by_new = traffic_split(events[schema.ID_COLUMN].tolist(), share, salt)
            scores[~served_by_new] = predict_proba(previous, inputs.loc[~served_by_new])
        return scores

    return serve
