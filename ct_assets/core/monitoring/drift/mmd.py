"""Multivariate drift: alibi-detect ``MMDDrift`` (PyTorch backend) on a bounded, seeded subsample.

torch and alibi-detect are imported inside :func:`multivariate_mmd` (the code location imports this
module).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import numpy as np

from ct_assets.core.monitoring.drift.types import DriftConfig, MultivariateDrift

if TYPE_CHECKING:
    import pandas as pd


def _mmd_matrix(
    frame: pd.DataFrame,
    rows: np.ndarray,
    numeric: tuple[str, ...],
    means: np.ndarray,
    stds: np.ndarray,
    one_hot: list[tuple[str, list[str]]],
) -> np.ndarray:
    """Standardised numeric features + one-hot top categories of the sampled rows, float32."""
    sample = frame.iloc[rows]
    numeric_part = (sample[list(numeric)].to_numpy(dtype=np.float64) - means) / stds
    numeric_part = np.nan_to_num(numeric_part, nan=0.0)  # a missing value sits at the reference mean
    blocks = [numeric_part]
    for column, categories in one_hot:
        values = sample[column].astype(object).to_numpy()
        blocks.append((values[:, None] == np.array(categories, dtype=object)[None, :]).astype(np.float64))
    return np.hstack(blocks).astype(np.float32)


def multivariate_mmd(reference: pd.DataFrame, current: pd.DataFrame, config: DriftConfig) -> MultivariateDrift:
    """alibi-detect MMDDrift (PyTorch) on at most ``mmd_sample_size`` seeded rows per side.

    ``seconds`` excludes the one-off import of torch and alibi-detect (paid once per process).
    """
    import torch
    from alibi_detect.cd import MMDDrift

    started = time.perf_counter()

    rng = np.random.default_rng(config.seed)
    reference_rows = np.sort(rng.choice(len(reference), min(config.mmd_sample_size, len(reference)), replace=False))
    current_rows = np.sort(rng.choice(len(current), min(config.mmd_sample_size, len(current)), replace=False))
    numeric = config.tested_numeric
    reference_numeric = reference[list(numeric)].to_numpy(dtype=np.float64)
    means = np.nan_to_num(np.nanmean(reference_numeric, axis=0))
    stds = np.nan_to_num(np.nanstd(reference_numeric, axis=0))
    stds[stds == 0] = 1.0
    one_hot = [
        (column, [str(v) for v in reference[column].value_counts().index[: config.mmd_top_categories]])
        for column in config.tested_categorical
    ]
    x_reference = _mmd_matrix(reference, reference_rows, numeric, means, stds, one_hot)
    x_current = _mmd_matrix(current, current_rows, numeric, means, stds, one_hot)
    # The permutation test draws from torch's global generator: seed a forked copy for determinism.
    # Few threads: on a shared 2-core box, intra-op parallelism over a 1000 x 1000 kernel matrix
    # has a heavy latency tail (0.3 s typical, 2 s under contention) while one thread is steady.
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(config.mmd_threads)
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(config.seed)
            detector = MMDDrift(
                x_reference, backend="pytorch", p_val=config.mmd_alpha,
                n_permutations=config.mmd_permutations, device="cpu",
            )
            outcome = detector.predict(x_current, return_p_val=True, return_distance=True)["data"]
    finally:
        torch.set_num_threads(previous_threads)
    return MultivariateDrift(
        method="mmd",
        statistic=float(outcome["distance"]),
        p_value=float(outcome["p_val"]),
        distance_threshold=float(outcome["distance_threshold"]),
        drifted=bool(outcome["is_drift"]),
        n_reference_sample=int(x_reference.shape[0]),
        n_current_sample=int(x_current.shape[0]),
        n_permutations=config.mmd_permutations,
        n_dimensions=int(x_reference.shape[1]),
        seconds=time.perf_counter() - started,
    )
