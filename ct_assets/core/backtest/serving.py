"""The models a strategy may serve during a replay: the shared warm-up model, the candidates a retrain
or a fine-tune fits with the live training functions, and each model's monitoring reference (the rows
drift and concept-drift tests compare the newest batch with)."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from ct_assets.core.backtest.batches import Batches
from ct_assets.core.backtest.config import BacktestConfig
from ct_assets.core.decision.policy_config import ACTION_RETRAIN
from ct_assets.core.release.gates import leakage_gate
from ct_assets.core.training.model import (
    TrainedModel,
    TrainingConfig,
    fine_tune,
    predict_proba,
    train_from_scratch,
)


@dataclass(frozen=True, eq=False)
class Serving:
    """A model a strategy may serve, with the history the policy's evidence reads."""

    model: TrainedModel
    path: str  # "initial" | "retrain" | "fine_tune" | "online"
    window: tuple[int, int]
    last_retrain_step: int
    fine_tunes_since_retrain: int
    leakage_aucs: dict[str, float] | None
    retrain_window: tuple[int, int]  # window of the last full retrain (or warm-up) in this model's chain


@dataclass(frozen=True, eq=False)
class Reference:
    """The serving model's monitoring reference: its training rows (sampled) and its holdout rows, scored."""

    features: pd.DataFrame
    scores: np.ndarray
    holdout_labels: np.ndarray
    holdout_scores: np.ndarray


def initial_model(data: Batches, config: BacktestConfig) -> Serving:
    """The model every strategy starts from, trained on the warm-up batches."""
    spec = data.spec
    last = config.warmup_batches - 1
    features, labels, batch_ids = data.rows(0, last, "train")
    if len(np.unique(labels)) < 2:
        raise ValueError(f"stream {spec.name!r}: the warm-up batches 0..{last} hold a single class")
    model = train_from_scratch(features[[*spec.numeric_features, *spec.categorical_features]], labels,
                               replace(config.training, seed=config.seed), numeric_columns=spec.numeric_features,
                               categorical_columns=spec.categorical_features)
    aucs = None
    if spec.numeric_features:  # the reference of the first leakage gate, as the bootstrap model's gate records it
        aucs = leakage_gate(features, labels, columns=spec.numeric_features,
                            batches=batch_ids).metrics["single_feature_auc"]
    return Serving(model, "initial", (0, last), last, 0, aucs, (0, last))


def fit_candidate(data: Batches, config: BacktestConfig, training: TrainingConfig, serving: Serving, action: str,
                  step: int, newest: int, first: int | None = None
                  ) -> tuple[Serving, pd.DataFrame, np.ndarray, np.ndarray] | None:
    """A retrain (``action`` retrain) on the trailing window (or from ``first``, a regime window), or a
    fine-tune of ``serving`` on the newest batches with replay of older rows, up to the newest labelled
    batch; with its training rows (features, labels, batch per row). None when a retrain's window holds a
    single class."""
    spec = data.spec
    inputs = [*spec.numeric_features, *spec.categorical_features]
    if action == ACTION_RETRAIN:
        trailing = max(0, newest - config.window_batches + 1)
        if first is not None:
            first = min(newest, max(trailing, first))
            training = regime_epochs(training, newest - first + 1, config.window_batches)
        else:
            first = trailing
        features, labels, batch_ids = data.rows(first, newest, "train")
        if len(np.unique(labels)) < 2:
            return None
        model = train_from_scratch(features[inputs], labels, training, numeric_columns=spec.numeric_features,
                                   categorical_columns=spec.categorical_features)
        return Serving(model, "retrain", (first, newest), step, 0, None, (first, newest)), features, labels, batch_ids
    first = max(0, newest - config.fine_tune_window_batches + 1)
    features, labels, batch_ids = data.rows(first, newest, "train")
    replay_first = max(0, first - config.replay_batches)
    replay_features = replay_labels = None
    if replay_first < first:
        replay_features, replay_labels, _ = data.rows(replay_first, first - 1, "train")
        replay_features = replay_features[inputs]
    model = fine_tune(serving.model, features[inputs], labels, replay_features, replay_labels, training)
    candidate = Serving(model, "fine_tune", (first, newest), serving.last_retrain_step,
                        serving.fine_tunes_since_retrain + 1, None, serving.retrain_window)
    return candidate, features, labels, batch_ids


def regime_epochs(training: TrainingConfig, window: int, full_window: int) -> TrainingConfig:
    """Epochs scaled so a short regime window gets a full window's gradient steps (without it, short
    windows were under-trained and lost to the trailing window).

    >>> regime_epochs(TrainingConfig(epochs=5), 2, 7).epochs, regime_epochs(TrainingConfig(epochs=5), 7, 7).epochs
    (18, 5)
    """
    if window >= full_window:
        return training
    return replace(training, epochs=math.ceil(training.epochs * full_window / window))


def monitoring_reference(data: Batches, config: BacktestConfig, serving: Serving) -> Reference:
    """Drift reference: the model's own training rows. Concept reference: the holdout rows of its
    chain's last full retrain (live), or of its own window (``concept_reference="model_window"``)."""
    first, last = serving.window
    features, _, _ = data.rows(first, last, "train")
    if len(features) > config.max_reference_rows:
        features = features.sample(n=config.max_reference_rows, random_state=config.seed)
        features = features.reset_index(drop=True)
    if config.concept_reference == "retrain_window":
        first, last = serving.retrain_window
    holdout, holdout_labels, _ = data.rows(first, last, "holdout")
    return Reference(features, predict_proba(serving.model, features), holdout_labels,
                     predict_proba(serving.model, holdout))
