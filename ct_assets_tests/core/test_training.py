import json
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from ct_assets.core.training.artifacts import weights_sha256
from ct_assets.core.training.model import (
    TrainedModel,
    TrainingConfig,
    fine_tune,
    predict_proba,
    select_device,
    train_from_scratch,
)
from ct_assets.core.training.preprocessing import Preprocessor
from ct_assets_tests.builders import random_model_inputs

SMALL = TrainingConfig(hidden_sizes=(16,), epochs=4, batch_size=128, seed=3, device="cpu",
                       fine_tune_max_steps=30)


def synthetic_orders(n_rows: int, seed: int, fraud_shift: float = 0.0) -> tuple[pd.DataFrame, np.ndarray]:
    """Features in the schema's columns with a learnable fraud signal (discount, account age, region)."""
    rng = np.random.default_rng(seed)
    frame = random_model_inputs(rng, n_rows)
    logit = (-1.5 + fraud_shift + 1.5 * frame["discount"] - 1.2 * frame["log_account_age"]
             + 1.0 * (frame["region"] == "north"))
    labels = (rng.random(n_rows) < 1.0 / (1.0 + np.exp(-logit))).astype(np.int64).to_numpy()
    return frame, labels


def auc(labels: np.ndarray, scores: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(labels, scores))


@pytest.fixture(scope="module")
def base_model() -> TrainedModel:
    features, labels = synthetic_orders(3000, seed=0)
    return train_from_scratch(features, labels, SMALL)


def test_training_learns_a_real_signal(base_model: TrainedModel) -> None:
    test_features, test_labels = synthetic_orders(2000, seed=1)
    scores = predict_proba(base_model, test_features)
    assert auc(test_labels, scores) > 0.75
    assert base_model.training_path == "retrain"
    assert base_model.n_train_rows == 3000
    assert base_model.n_steps == SMALL.epochs * int(np.ceil(3000 / SMALL.batch_size))


def test_same_seed_gives_identical_weights_and_another_seed_does_not(base_model: TrainedModel) -> None:
    features, labels = synthetic_orders(3000, seed=0)
    again = train_from_scratch(features, labels, SMALL)
    assert weights_sha256(again.weights) == weights_sha256(base_model.weights)
    assert all(np.array_equal(again.weights[k], base_model.weights[k]) for k in base_model.weights)
    other = train_from_scratch(features, labels, replace(SMALL, seed=4))
    assert weights_sha256(other.weights) != weights_sha256(base_model.weights)


def test_fine_tune_warm_starts_from_the_base_and_takes_bounded_steps(base_model: TrainedModel) -> None:
    recent, recent_labels = synthetic_orders(800, seed=5, fraud_shift=0.8)
    replay, replay_labels = synthetic_orders(2000, seed=6)
    # A different hidden_sizes in the config must not change the architecture of a fine-tune.
    config = replace(SMALL, hidden_sizes=(8, 8))
    tuned = fine_tune(base_model, recent, recent_labels, replay, replay_labels, config)

    assert tuned.training_path == "fine_tune"
    assert tuned.n_steps == config.fine_tune_max_steps
    assert tuned.hidden_sizes == base_model.hidden_sizes
    assert tuned.preprocessor is base_model.preprocessor
    # replay_fraction 0.3 of the fine-tune set: 800 recent rows + ceil(800 * 0.3 / 0.7) replayed rows.
    assert tuned.n_replay_rows == 343
    assert tuned.n_train_rows == 800 + 343

    moved = sum(float(np.abs(tuned.weights[k] - base_model.weights[k]).sum()) for k in base_model.weights)
    assert moved > 0.0
    fresh = train_from_scratch(recent, recent_labels, SMALL)
    fresh_distance = sum(float(np.abs(fresh.weights[k] - base_model.weights[k]).sum()) for k in base_model.weights)
    assert moved < 0.25 * fresh_distance  # stayed near the base, unlike an independent model
    # The shift raised the fraud rate; the fine-tune follows it.
    assert predict_proba(tuned, recent).mean() > predict_proba(base_model, recent).mean()


def test_fine_tune_without_replay_uses_only_recent_rows(base_model: TrainedModel) -> None:
    recent, recent_labels = synthetic_orders(300, seed=7)
    tuned = fine_tune(base_model, recent, recent_labels, None, None, SMALL)
    assert tuned.n_replay_rows == 0
    assert tuned.n_train_rows == 300


def test_unseen_categories_go_to_the_unknown_bucket(base_model: TrainedModel) -> None:
    features, labels = synthetic_orders(200, seed=8)
    features.loc[:99, "query_term"] = "rizz"  # new slang the base model never saw
    features.loc[:9, "region"] = None
    pre = base_model.preprocessor
    assert "rizz" not in pre.vocabularies[pre.categorical_columns.index("query_term")]
    matrix = pre.transform(features)
    unknown_term_slot = pre.feature_names.index(f"query_term={'__unknown__'}")
    assert matrix[:100, unknown_term_slot].sum() == 100
    assert matrix[100:, unknown_term_slot].sum() == 0
    assert pre.unknown_share(features)["query_term"] == pytest.approx(0.5)
    assert pre.unknown_share(features)["region"] == pytest.approx(0.05)

    scores = predict_proba(base_model, features)
    assert np.isfinite(scores).all()
    tuned = fine_tune(base_model, features, labels, None, None, SMALL)
    assert tuned.preprocessor.vocabularies == pre.vocabularies


def test_predict_proba_runs_on_cpu_and_returns_probabilities(base_model: TrainedModel) -> None:
    features, _ = synthetic_orders(500, seed=9)
    scores = predict_proba(base_model, features)
    assert scores.shape == (500,) and scores.dtype == np.float64
    assert ((scores > 0) & (scores < 1)).all()
    assert all(isinstance(w, np.ndarray) for w in base_model.weights.values())  # weights live on the CPU
    assert base_model.cost.device == "cpu"


def test_compute_cost_follows_the_documented_estimate(base_model: TrainedModel) -> None:
    cost = base_model.cost
    assert cost.wall_seconds > 0 and cost.cpu_seconds > 0
    assert cost.energy_kwh == pytest.approx(cost.cpu_seconds * SMALL.cpu_watts_per_thread / 3.6e6)
    assert cost.co2_kg == pytest.approx(cost.energy_kwh * SMALL.grid_kg_co2_per_kwh)
    assert "estimate" in cost.estimation_method


def mini_batch_rows(n_rows: int, batch_size: int, steps: int) -> int:
    """Rows of the first ``steps`` mini-batches of repeated passes over ``n_rows`` rows."""
    sizes = [min(batch_size, n_rows - start) for start in range(0, n_rows, batch_size)]
    return sum(sizes[step % len(sizes)] for step in range(steps))


def test_deterministic_cost_counts_every_mini_batch_row_the_same_way_twice(base_model: TrainedModel) -> None:
    cost = base_model.cost
    input_dim = base_model.preprocessor.input_dim
    assert cost.n_parameters == input_dim * 16 + 16 + 16 + 1
    assert cost.examples_processed == SMALL.epochs * 3000
    assert cost.train_gflops == pytest.approx(6 * cost.n_parameters * SMALL.epochs * 3000 / 1e9)
    features, labels = synthetic_orders(3000, seed=0)
    again = train_from_scratch(features, labels, SMALL).cost
    assert (again.examples_processed, again.n_parameters, again.train_gflops) == \
        (cost.examples_processed, cost.n_parameters, cost.train_gflops)

    recent, recent_labels = synthetic_orders(1000, seed=5)
    tuned = fine_tune(base_model, recent, recent_labels, features, labels, SMALL)
    assert tuned.n_train_rows == 1000 + tuned.n_replay_rows
    assert tuned.cost.examples_processed == mini_batch_rows(tuned.n_train_rows, SMALL.batch_size,
                                                            SMALL.fine_tune_max_steps)
    assert tuned.cost.n_parameters == cost.n_parameters


def test_min_steps_is_a_floor_for_a_small_training_set() -> None:
    features, labels = synthetic_orders(300, seed=2)
    floored = train_from_scratch(features, labels, replace(SMALL, min_steps=25))
    assert floored.n_steps == 25  # 4 epochs of 3 mini-batches would be 12
    assert floored.cost.examples_processed == mini_batch_rows(300, SMALL.batch_size, 25)
    assert train_from_scratch(features, labels, replace(SMALL, min_steps=5)).n_steps == 12  # only a floor
    with pytest.raises(ValueError, match="min_steps"):
        TrainingConfig(min_steps=-1)


def test_preprocessor_round_trips_through_json() -> None:
    features, _ = synthetic_orders(300, seed=10)
    features.loc[:5, "discount"] = np.nan
    pre = Preprocessor.fit(features, max_categories=10)
    assert len(pre.vocabularies[pre.categorical_columns.index("query_term")]) == 10
    restored = Preprocessor.from_dict(json.loads(json.dumps(pre.to_dict())))
    assert restored == pre
    matrix = restored.transform(features)
    assert np.array_equal(matrix, pre.transform(features))
    assert matrix.shape == (300, pre.input_dim)
    assert np.isfinite(matrix).all()


def test_standardisation_and_clipping_of_numeric_columns() -> None:
    features, _ = synthetic_orders(1000, seed=11)
    pre = Preprocessor.fit(features)
    matrix = pre.transform(features)
    j = pre.numeric_columns.index("sensor_signal")
    assert abs(matrix[:, j].mean()) < 1e-5 and abs(matrix[:, j].std() - 1.0) < 1e-3
    rescaled = features.assign(sensor_signal=features["sensor_signal"] * 1000.0)
    assert np.abs(pre.transform(rescaled)[:, j]).max() == pytest.approx(10.0)


def test_bad_inputs_are_refused_with_clear_errors() -> None:
    features, labels = synthetic_orders(100, seed=12)
    with pytest.raises(ValueError, match="single class"):
        train_from_scratch(features, np.zeros(100), SMALL)
    with pytest.raises(ValueError, match="99 labels for 100"):
        train_from_scratch(features, labels[:99], SMALL)
    with pytest.raises(ValueError, match="missing columns.*query_term"):
        train_from_scratch(features.drop(columns="query_term"), labels, SMALL)
    with pytest.raises(ValueError, match="0/1"):
        train_from_scratch(features, labels * 2, SMALL)
    with pytest.raises(ValueError, match="replay_fraction"):
        TrainingConfig(replay_fraction=1.0)
    with pytest.raises(ValueError, match="device"):
        TrainingConfig(device="tpu")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="hidden_sizes"):
        TrainingConfig(hidden_sizes=())


def test_device_selection() -> None:
    import torch

    assert select_device("cpu") == "cpu"
    assert select_device("auto") == ("cuda" if torch.cuda.is_available() else "cpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            select_device("cuda")
