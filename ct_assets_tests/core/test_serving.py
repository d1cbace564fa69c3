import duckdb
import numpy as np

from ct_assets.core.data.features import features_from_events
from ct_assets.core.release.deployment import promote
from ct_assets.core.release.registry import (
    ModelRecord,
    ensure_registry_tables,
    register_candidate,
)
from ct_assets.core.release.rollout import RolloutPlan, start_rollout, traffic_split
from ct_assets.core.training.artifacts import save_model
from ct_assets.core.training.model import TrainingConfig, predict_proba, train_from_scratch
from ct_assets.core.training.preprocessing import MODEL_INPUTS
from ct_assets.simulation.config import SimulatorConfig
from ct_assets.simulation.generation import generate_day
from ct_assets.simulation.serving import serving_fn_from_snapshot


def _model(seed, batch):
    features = features_from_events(batch.events)
    return train_from_scratch(features[list(MODEL_INPUTS)], batch.is_fraud, TrainingConfig(epochs=1, seed=seed))


def _register(con, models_dir, model):
    stored = save_model(models_dir, model, {})
    register_candidate(con, ModelRecord(model_id=stored.model_id, training_path="retrain"))
    promote(con, stored.model_id, actor="test", reason="test")
    return stored.model_id


def test_no_snapshot_or_no_model_serves_the_default(tmp_path):
    assert serving_fn_from_snapshot(tmp_path / "missing.duckdb", tmp_path / "models") is None
    with duckdb.connect(str(tmp_path / "snap.duckdb")) as con:
        ensure_registry_tables(con)
    assert serving_fn_from_snapshot(tmp_path / "snap.duckdb", tmp_path / "models") is None


def test_rollout_splits_traffic_between_new_and_previous_model(tmp_path):
    batch = generate_day(SimulatorConfig(rows_per_day=600), 0)
    old, new = _model(1, batch), _model(2, batch)
    snapshot, models = tmp_path / "snap.duckdb", tmp_path / "models"
    with duckdb.connect(str(snapshot)) as con:
        ensure_registry_tables(con)
        old_id = _register(con, models, old)
        new_id = _register(con, models, new)
        rollout = start_rollout(con, new_id, old_id, RolloutPlan(steps=(0.25, 1.0)), day="2025-01-01")
    serve = serving_fn_from_snapshot(snapshot, models)
    scores = serve(batch.events)
    inputs = features_from_events(batch.events)[list(MODEL_INPUTS)]
    by_new = traffic_split(batch.events["event_id"].tolist(), 0.25, rollout.rollout_id)
    assert 0.15 < by_new.mean() < 0.35
    np.testing.assert_allclose(scores[by_new], predict_proba(new, inputs)[by_new])
    np.testing.assert_allclose(scores[~by_new], predict_proba(old, inputs)[~by_new])
