"""Small real models (torch, 1 epoch) shared by the reliability tests."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ct_assets.core.training.model import TrainedModel, TrainingConfig, train_from_scratch
from ct_assets_tests.builders import random_model_inputs


def model_inputs(n_rows: int, seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    """Random model inputs (the MODEL_INPUTS columns) and a label learnable from one of them."""
    rng = np.random.default_rng(seed)
    frame = random_model_inputs(rng, n_rows)
    return frame, (frame["discount"] > 0.5).astype(np.int64).to_numpy()


@pytest.fixture(scope="session")
def two_models() -> tuple[TrainedModel, TrainedModel]:
    """Two different small models (different data and seeds, so different weights and ids)."""
    return tuple(train_from_scratch(*model_inputs(300, seed), TrainingConfig(hidden_sizes=(4,), epochs=1, seed=seed,
                                                                              device="cpu"))
                 for seed in (0, 1))


@pytest.fixture(scope="session")
def small_model(two_models: tuple[TrainedModel, TrainedModel]) -> TrainedModel:
    return two_models[0]
