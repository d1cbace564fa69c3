"""Quality gates of a staged candidate against the production model.

``evaluate_candidate`` scores the candidate and the production model on the same fixed holdout
rows of the candidate's window, runs every gate, records the results in the registry and
rejects the candidate when an error-severity gate fails. Promotion of a winner is a move of the
production pointer (core/release/deployment.py).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd

from ct_assets.core.common import has_table
from ct_assets.core.data import schema
from ct_assets.core.data.features import load_features
from ct_assets.core.decision.records import get_decision
from ct_assets.core.release.deployment import reject
from ct_assets.core.release.gates import (
    GateResult,
    calibration_gate,
    fairness_gate,
    holdout_gate,
    leakage_gate,
    non_regression_gate,
    selection_bias_gate,
)
from ct_assets.core.release.registry import (
    ModelRecord,
    get_model,
    get_production,
    record_gate_results,
)
from ct_assets.core.training.artifacts import load_model
from ct_assets.core.training.candidates import MODEL_INPUTS, split_train_holdout
from ct_assets.core.training.model import predict_proba


@dataclass(frozen=True)
class GateSettings:
    metric: str = "auc"
    margin: float = 0.01  # the seed's example: at least 1 % better
    relative: bool = True
    n_boot: int = 200
    fairness_tolerance: float = 0.02
    max_gap_widening: float = 0.05
    # Absolute cap on the AUC gap between protected groups (None: off); see gates.fairness_gate.
    fairness_max_gap: float | None = 0.05
    max_single_feature_auc: float = 0.97
    leakage_max_jump: float = 0.15
    max_ece_increase: float = 0.02
    non_regression_tolerance: float = 0.01  # a local fine-tune may lose at most this much elsewhere
    seed: int = 0


def _reference_feature_aucs(production: ModelRecord | None) -> dict[str, float] | None:
    """Single-feature AUCs measured when the production model passed its own leakage gate."""
    if production is None:
        return None
    for gate in production.gate_results:
        if gate.get("name") == "leakage":
            aucs = gate.get("metrics", {}).get("single_feature_auc")
            return {k: float(v) for k, v in aucs.items()} if isinstance(aucs, dict) else None
    return None


def _subset(scores: np.ndarray | None, mask: np.ndarray) -> np.ndarray | None:
    return None if scores is None else scores[mask]


def _named(gate: GateResult, where: str) -> GateResult:
    return replace(gate, reason=f"{where}: {gate.reason}")


def _local_shift_rows(con: duckdb.DuckDBPyConnection, record: ModelRecord,
                      holdout: pd.DataFrame) -> tuple[np.ndarray | None, str]:
    """Holdout rows inside the segments of the local shift that led to this fine-tune, if any.

    Only for a fine-tune decided on a local shift along one segment column (e.g. region=south),
    with enough rows on both sides to judge; otherwise (None, "").
    """
    if record.training_path != "fine_tune" or not record.decision_id:
        return None, ""
    decision = get_decision(con, record.decision_id) if has_table(con, "decisions") else None
    if decision is None or decision.evidence.get("drift_scope") != "local":
        return None, ""
    segments = [str(s).split("=", 1) for s in decision.evidence.get("affected_segments", []) if "=" in str(s)]
    columns = {column for column, _ in segments}
    if len(columns) != 1 or next(iter(columns)) not in holdout.columns:
        return None, ""
    column = next(iter(columns))
    values = sorted(value for _, value in segments)
    mask = holdout[column].isin(values).to_numpy()
    if mask.sum() < 100 or (~mask).sum() < 100:
        return None, ""
    return mask, f"{column}={'|'.join(values)}"


def _selection_bias(con: duckdb.DuckDBPyConnection, models_dir: Path, record: ModelRecord,
                    production: ModelRecord | None) -> GateResult:
    """Which rows of the candidate's window got labels, against what the serving model decided."""
    window = load_features(con, str(record.data_window_start), str(record.data_window_end))
    # The newest days have not had their label delay yet: compare only days whose labels had time.
    window = window[window["day"] < window["day"].max()] if window["day"].nunique() > 1 else window
    scores = (predict_proba(load_model(models_dir, production.model_id), window[list(MODEL_INPUTS)])
              if production is not None else None)
    return selection_bias_gate(window[schema.LABEL_COLUMN].notna().to_numpy(), scores)


def evaluate_candidate(con: duckdb.DuckDBPyConnection, models_dir: Path, model_id: str,
                       settings: GateSettings) -> list[GateResult]:
    """Run every gate for ``model_id``, record the results and reject it when an error gate fails.

    A fine-tune decided on a local shift is judged on the holdout rows of the shifted segments
    (it must beat production there) plus a non-regression gate on the other rows.
    """
    record = get_model(con, model_id)
    if record is None:
        raise ValueError(f"unknown model id {model_id!r}")
    if record.data_window_start is None or record.data_window_end is None:
        raise ValueError(f"model {model_id} has no data window; cannot find its holdout")
    frame = load_features(con, str(record.data_window_start), str(record.data_window_end), labelled_only=True)
    train, holdout = split_train_holdout(frame)
    if holdout.empty or holdout[schema.LABEL_COLUMN].nunique() < 2:
        raise ValueError(f"model {model_id}: holdout of its window has {len(holdout)} rows and "
                         f"{holdout[schema.LABEL_COLUMN].nunique()} classes; cannot evaluate")
    candidate_scores = predict_proba(load_model(models_dir, model_id), holdout[list(MODEL_INPUTS)])
    production = get_production(con)
    if production is not None and production.model_id == model_id:
        production = None
    production_scores = (predict_proba(load_model(models_dir, production.model_id), holdout[list(MODEL_INPUTS)])
                         if production is not None else None)
    y = holdout[schema.LABEL_COLUMN].to_numpy()
    in_shift, where = _local_shift_rows(con, record, holdout)
    if in_shift is None:
        accuracy_gates = [holdout_gate(y, candidate_scores, production_scores, metric=settings.metric,
                                       margin=settings.margin, relative=settings.relative, n_boot=settings.n_boot,
                                       seed=settings.seed),
                          GateResult("non_regression", True, "error", {}, {},
                                     "not a local fine-tune: the holdout gate judged every row")]
    else:
        # A local fine-tune must win where the shift is and must not lose elsewhere: judged on the
        # whole holdout, a shift in a fifth of the traffic moves the overall metric too little.
        accuracy_gates = [
            _named(holdout_gate(y[in_shift], candidate_scores[in_shift], _subset(production_scores, in_shift),
                                metric=settings.metric, margin=settings.margin, relative=settings.relative,
                                n_boot=settings.n_boot, seed=settings.seed), f"on {where}"),
            non_regression_gate(y[~in_shift], candidate_scores[~in_shift], _subset(production_scores, ~in_shift),
                                metric=settings.metric, tolerance=settings.non_regression_tolerance,
                                scope=f"rows outside {where}"),
        ]
    gates = [
        *accuracy_gates,
        fairness_gate(y, candidate_scores, production_scores, holdout[schema.GROUP_COLUMN].to_numpy(),
                      metric="auc", tolerance=settings.fairness_tolerance,
                      max_gap_widening=settings.max_gap_widening, max_gap=settings.fairness_max_gap),
        leakage_gate(train, train[schema.LABEL_COLUMN].to_numpy(),
                     max_single_feature_auc=settings.max_single_feature_auc,
                     reference_auc=_reference_feature_aucs(production), max_jump=settings.leakage_max_jump,
                     batches=train["day"].astype(str).to_numpy()),
        calibration_gate(y, candidate_scores, production_scores, max_ece_increase=settings.max_ece_increase),
        _selection_bias(con, models_dir, record, production),
    ]
    record_gate_results(con, model_id, gates)
    failed = [g for g in gates if not g.passed and g.severity == "error"]
    if failed:
        reject(con, model_id, "; ".join(f"{g.name}: {g.reason}" for g in failed), actor="gates")
    return gates
