"""Build a candidate model from the warehouse: window -> split -> train -> store -> register.

The same functions serve the Dagster assets, manual runs and the backtest, so an automatic
candidate and a manual one are built, stored and registered identically.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import duckdb
import numpy as np

from ct_assets.core.data import schema
from ct_assets.core.data.features import load_features
from ct_assets.core.data.splits import holdout_mask
from ct_assets.core.ops.faults import CANDIDATE_TRAINED, pause_point
from ct_assets.core.release.registry import (
    ModelRecord,
    ensure_registry_tables,
    get_production,
    register_candidate,
)
from ct_assets.core.training.artifacts import load_model, save_model
from ct_assets.core.training.model import (
    TrainedModel,
    TrainingConfig,
    fine_tune,
    train_from_scratch,
)
from ct_assets.core.training.preprocessing import MODEL_INPUTS

if TYPE_CHECKING:
    import pandas as pd


@dataclass(frozen=True)
class CandidateRequest:
    """Why and on what a candidate is built (recorded verbatim in the registry)."""

    training_path: str  # "retrain" | "fine_tune"
    window_end: date
    window_days: int
    trigger: str  # "drift" | "staleness" | "bootstrap" | "manual" | "schedule" | ...
    trigger_reason: str
    min_rows: int
    decision_id: str | None = None
    drift_report_id: str | None = None
    policy_version: str | None = None

    def __post_init__(self) -> None:
        if self.training_path not in ("retrain", "fine_tune"):
            raise ValueError(f"training_path must be 'retrain' or 'fine_tune', got {self.training_path!r}")
        if self.window_days < 1:
            raise ValueError(f"window_days must be >= 1, got {self.window_days}")

    @property
    def window_start(self) -> date:
        return self.window_end - timedelta(days=self.window_days - 1)


def code_version() -> str:
    """The git commit of the running code, or 'unknown' outside a checkout."""
    try:
        out = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], capture_output=True, text=True,
                             timeout=5, cwd=Path(__file__).resolve().parent)
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return out.stdout.strip() if out.returncode == 0 and out.stdout.strip() else "unknown"


def split_train_holdout(frame: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Rows whose id hashes into the fixed holdout are never trained on, by any model."""
    mask = holdout_mask(frame[schema.ID_COLUMN].to_numpy())
    return frame.loc[~mask].reset_index(drop=True), frame.loc[mask].reset_index(drop=True)


def _train(con: duckdb.DuckDBPyConnection, models_dir: Path, request: CandidateRequest,
           train: pd.DataFrame, config: TrainingConfig) -> tuple[TrainedModel, str | None]:
    production = get_production(con)
    if request.training_path == "retrain":
        return train_from_scratch(train[list(MODEL_INPUTS)], train[schema.FRAUD_LABEL_COLUMN], config), None
    if production is None:
        raise ValueError("cannot fine-tune: no production model to start from (retrain instead)")
    base = load_model(models_dir, production.model_id)
    # Replay: older labelled rows from before the window, against forgetting what still holds.
    replay_end = request.window_start - timedelta(days=1)
    replay = load_features(con, str(replay_end - timedelta(days=4 * request.window_days)), str(replay_end),
                           labelled_only=True)
    replay = replay.loc[~holdout_mask(replay[schema.ID_COLUMN].to_numpy())]
    model = fine_tune(base, train[list(MODEL_INPUTS)], train[schema.FRAUD_LABEL_COLUMN],
                      replay[list(MODEL_INPUTS)] if len(replay) else None,
                      replay[schema.FRAUD_LABEL_COLUMN] if len(replay) else None, config)
    return model, production.model_id


def build_candidate(con: duckdb.DuckDBPyConnection, models_dir: Path, request: CandidateRequest,
                    config: TrainingConfig) -> ModelRecord:
    """Train a candidate on the labelled rows of the request's window and register it as staging.

    Raises ValueError (with the counts) when the window has fewer than ``min_rows`` labelled
    training rows or a single class, so a premature trigger fails loudly rather than training
    on noise.
    """
    ensure_registry_tables(con)
    frame = load_features(con, str(request.window_start), str(request.window_end), labelled_only=True)
    train, holdout = split_train_holdout(frame)
    if len(train) < request.min_rows:
        raise ValueError(f"only {len(train)} labelled training rows in {request.window_start}..{request.window_end}; "
                         f"need at least {request.min_rows}")
    model, parent = _train(con, models_dir, request, train, config)
    pause_point(CANDIDATE_TRAINED)
    metrics = {"train_rows": len(train), "holdout_rows": len(holdout),
               "train_positive_rate": float(np.mean(train[schema.FRAUD_LABEL_COLUMN])),
               "final_train_loss": model.final_train_loss, "steps": model.n_steps,
               "replay_rows": model.n_replay_rows}
    window = {"start": str(request.window_start), "end": str(request.window_end)}
    version = code_version()
    stored = save_model(models_dir, model, {
        "data_window": window, "parent_model_id": parent, "code_version": version, "metrics": metrics,
        "trigger": request.trigger, "trigger_reason": request.trigger_reason,
        "decision_id": request.decision_id, "drift_report_id": request.drift_report_id,
    })
    record = ModelRecord(
        model_id=stored.model_id, training_path=request.training_path, parent_model_id=parent,
        trigger=request.trigger, trigger_reason=request.trigger_reason, decision_id=request.decision_id,
        drift_report_id=request.drift_report_id, data_window_start=request.window_start,
        data_window_end=request.window_end, n_train_rows=len(train), hyperparameters=config.to_dict(),
        metrics=metrics, wall_s=model.cost.wall_seconds, cpu_s=model.cost.cpu_seconds,
        energy_kwh=model.cost.energy_kwh, train_gflops=model.cost.train_gflops,
        co2_kg=model.cost.co2_kg, artifact_path=str(stored.path),
        weights_sha256=stored.weights_sha256, code_version=version, policy_version=request.policy_version,
    )
    return register_candidate(con, record)
