"""Quality gates of a staged candidate against the production model.

``evaluate_candidate`` scores the candidate and the production model on the same fixed holdout
rows of the candidate's window, runs every gate, records the results in the registry and
rejects the candidate when an error-severity gate fails. Promotion of a winner is a move of the
production pointer (core/release/deployment.py).
"""

from __future__ import annotations

from pathlib import Path

import duckdb
import pandas as pd

from ct_assets.core.common import has_table
from ct_assets.core.data import schema
from ct_assets.core.data.features import load_features
from ct_assets.core.decision.records import get_decision
from ct_assets.core.release.deployment import reject
from ct_assets.core.release.gates import GateResult
from ct_assets.core.release.lineup import (
    GateSettings,
    HoldoutScores,
    LabelCoverage,
    LocalShift,
    TrainingRows,
    blocking_failures,
    candidate_gates,
    select_local_shift,
)
from ct_assets.core.release.registry import (
    ModelRecord,
    get_model,
    get_production,
    record_gate_results,
)
from ct_assets.core.training.artifacts import load_model
from ct_assets.core.training.candidates import split_train_holdout
from ct_assets.core.training.model import predict_proba
from ct_assets.core.training.preprocessing import MODEL_INPUTS


def _reference_feature_aucs(production: ModelRecord | None) -> dict[str, float] | None:
    """Single-feature AUCs measured when the production model passed its own leakage gate."""
    if production is None:
        return None
    for gate in production.gate_results:
        if gate.get("name") == "leakage":
            aucs = gate.get("metrics", {}).get("single_feature_auc")
            return {k: float(v) for k, v in aucs.items()} if isinstance(aucs, dict) else None
    return None


def _local_shift(con: duckdb.DuckDBPyConnection, record: ModelRecord, holdout: pd.DataFrame) -> LocalShift | None:
    """The holdout rows of the local shift in the decision that led to this model, if any."""
    decision = (get_decision(con, record.decision_id)
                if record.decision_id and has_table(con, "decisions") else None)
    if decision is None:
        return None
    return select_local_shift(holdout, record.training_path, decision.evidence.get("drift_scope"),
                              decision.evidence.get("affected_segments", []))


def _label_coverage(con: duckdb.DuckDBPyConnection, models_dir: Path, record: ModelRecord,
                    production: ModelRecord | None) -> LabelCoverage:
    """Which rows of the candidate's window got labels, against what the serving model decided."""
    window = load_features(con, str(record.data_window_start), str(record.data_window_end))
    # The newest days have not had their label delay yet: compare only days whose labels had time.
    window = window[window["day"] < window["day"].max()] if window["day"].nunique() > 1 else window
    scores = (predict_proba(load_model(models_dir, production.model_id), window[list(MODEL_INPUTS)])
              if production is not None else None)
    return LabelCoverage(window[schema.FRAUD_LABEL_COLUMN].notna().to_numpy(), scores)


def evaluate_candidate(con: duckdb.DuckDBPyConnection, models_dir: Path, model_id: str,
                       settings: GateSettings) -> list[GateResult]:
    """Run every gate for ``model_id`` (``lineup.candidate_gates``), record the results and reject
    it when an error gate fails.

    The gates judge the fixed holdout rows of the candidate's window; a fine-tune decided on a local
    shift is judged on the rows of the shifted segments plus a non-regression gate on the others.
    """
    record = get_model(con, model_id)
    if record is None:
        raise ValueError(f"unknown model id {model_id!r}")
    if record.data_window_start is None or record.data_window_end is None:
        raise ValueError(f"model {model_id} has no data window; cannot find its holdout")
    frame = load_features(con, str(record.data_window_start), str(record.data_window_end), labelled_only=True)
    train, holdout = split_train_holdout(frame)
    if holdout.empty or holdout[schema.FRAUD_LABEL_COLUMN].nunique() < 2:
        raise ValueError(f"model {model_id}: holdout of its window has {len(holdout)} rows and "
                         f"{holdout[schema.FRAUD_LABEL_COLUMN].nunique()} classes; cannot evaluate")
    production = get_production(con)
    if production is not None and production.model_id == model_id:
        production = None
    inputs = holdout[list(MODEL_INPUTS)]
    scores = HoldoutScores(
        labels=holdout[schema.FRAUD_LABEL_COLUMN].to_numpy(),
        candidate=predict_proba(load_model(models_dir, model_id), inputs),
        production=predict_proba(load_model(models_dir, production.model_id), inputs) if production else None,
        groups=holdout[schema.GROUP_COLUMN].to_numpy())
    training = TrainingRows(train, train[schema.FRAUD_LABEL_COLUMN].to_numpy(), train["day"].astype(str).to_numpy(),
                            schema.FEATURE_NUMERIC, _reference_feature_aucs(production))
    gates = candidate_gates(scores, settings, training=training, local_shift=_local_shift(con, record, holdout),
                            label_coverage=_label_coverage(con, models_dir, record, production))
    record_gate_results(con, model_id, gates)
    failed = blocking_failures(gates)
    if failed:
        reject(con, model_id, "; ".join(f"{g.name}: {g.reason}" for g in failed), actor="gates")
    return gates
