"""Quality gates of a staged candidate against the production model.

``evaluate_candidate`` scores the candidate and the production model on the same fixed holdout
rows: those of the newest regime in the candidate's window (since the detected shift started, else
the newest days) and the fixed long-term holdout set over the whole history. It runs every gate,
records the results in the registry and rejects the candidate when an error-severity gate fails.
Promotion of a winner is a move of the production pointer (core/release/deployment.py).
"""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING

import duckdb
import numpy as np

from ct_assets.core.common import has_table
from ct_assets.core.data import schema
from ct_assets.core.data.features import load_features
from ct_assets.core.data.splits import long_term_holdout_mask
from ct_assets.core.decision.evidence import current_shift_start
from ct_assets.core.decision.policy_config import PolicyConfig
from ct_assets.core.decision.records import DecisionRecord, get_decision
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
    newest_holdout_rows,
    regime_start,
    select_local_shift,
    serving_degraded,
    spread_evenly,
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

if TYPE_CHECKING:
    import pandas as pd

_HISTORY_START = "1970-01-01"  # the long-term holdout set reaches back to the first ingested day


def _reference_feature_aucs(production: ModelRecord | None) -> dict[str, float] | None:
    """Single-feature AUCs measured when the production model passed its own leakage gate."""
    if production is None:
        return None
    for gate in production.gate_results:
        if gate.get("name") == "leakage":
            aucs = gate.get("metrics", {}).get("single_feature_auc")
            return {k: float(v) for k, v in aucs.items()} if isinstance(aucs, dict) else None
    return None


def _decision(con: duckdb.DuckDBPyConnection, record: ModelRecord) -> DecisionRecord | None:
    """The decision that led to this model, if recorded."""
    if not record.decision_id or not has_table(con, "decisions"):
        return None
    return get_decision(con, record.decision_id)


def _local_shift(record: ModelRecord, decision: DecisionRecord | None, holdout: pd.DataFrame) -> LocalShift | None:
    """The holdout rows of the local shift in the decision that led to this model, if any."""
    if decision is None:
        return None
    return select_local_shift(holdout, record.training_path, decision.evidence.get("drift_scope"),
                              decision.evidence.get("affected_segments", []))


def _days(frame: pd.DataFrame) -> np.ndarray:
    import pandas as pd
    return pd.to_datetime(frame["day"]).dt.date.to_numpy()


def _scores(models_dir: Path, model_id: str, production: ModelRecord | None,
            rows: pd.DataFrame, described: str) -> HoldoutScores:
    inputs = rows[list(MODEL_INPUTS)]
    return HoldoutScores(
        labels=rows[schema.FRAUD_LABEL_COLUMN].to_numpy(),
        candidate=predict_proba(load_model(models_dir, model_id), inputs),
        production=predict_proba(load_model(models_dir, production.model_id), inputs) if production else None,
        groups=rows[schema.GROUP_COLUMN].to_numpy(), rows=described)


def _long_term_rows(con: duckdb.DuckDBPyConnection, record: ModelRecord, settings: GateSettings) -> pd.DataFrame:
    """The fixed long-term holdout set: its labelled rows on every day up to the candidate's window end,
    capped at ``long_term_max_rows`` spread evenly over the days."""
    history = load_features(con, _HISTORY_START, str(record.data_window_end), labelled_only=True)
    rows = history.loc[long_term_holdout_mask(history[schema.ID_COLUMN].to_numpy())]
    rows = rows.sort_values(["day", schema.ID_COLUMN]).reset_index(drop=True)
    return rows.iloc[spread_evenly(len(rows), settings.long_term_max_rows)].reset_index(drop=True)


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
                       settings: GateSettings, policy: PolicyConfig | None = None) -> list[GateResult]:
    """Run every gate for ``model_id`` (``lineup.candidate_gates``), record the results and reject
    it when an error gate fails.

    The holdout gates judge the newest regime's holdout rows of the candidate's window: from the
    start of the shift ongoing on the day of the decision behind the model (``policy`` says which
    days count as shifted; None: no shift known), else the newest days. A fine-tune decided on a
    local shift is judged on the rows of the shifted segments plus a non-regression gate on the
    others; the fixed long-term holdout set guards the whole history.
    """
    record = get_model(con, model_id)
    if record is None:
        raise ValueError(f"unknown model id {model_id!r}")
    if record.data_window_start is None or record.data_window_end is None:
        raise ValueError(f"model {model_id} has no data window; cannot find its holdout")
    frame = load_features(con, str(record.data_window_start), str(record.data_window_end), labelled_only=True)
    train, window_holdout = split_train_holdout(frame)
    if window_holdout.empty or window_holdout[schema.FRAUD_LABEL_COLUMN].nunique() < 2:
        raise ValueError(f"model {model_id}: holdout of its window has {len(window_holdout)} rows and "
                         f"{window_holdout[schema.FRAUD_LABEL_COLUMN].nunique()} classes; cannot evaluate")
    production = get_production(con)
    if production is not None and production.model_id == model_id:
        production = None
    decision = _decision(con, record)
    monitored: date | None = (current_shift_start(con, decision.day, policy)
                              if decision is not None and policy is not None else None)
    decided = decision.evidence.get("regime_window_start") if decision is not None else None
    newest = newest_holdout_rows(_days(window_holdout), window_holdout[schema.FRAUD_LABEL_COLUMN].to_numpy(),
                                 regime_start(None if decided is None else date.fromordinal(int(decided)), monitored),
                                 settings)
    holdout = window_holdout.loc[newest.rows].reset_index(drop=True)
    long_term = _long_term_rows(con, record, settings)
    shifted = decision.evidence.get("drifted_features") if decision is not None else None
    training = TrainingRows(train, train[schema.FRAUD_LABEL_COLUMN].to_numpy(), train["day"].astype(str).to_numpy(),
                            schema.FEATURE_NUMERIC, _reference_feature_aucs(production),
                            None if shifted is None else tuple(str(f) for f in shifted),
                            decision is not None and serving_degraded(
                                bool(decision.evidence.get("concept_drift_detected")),
                                decision.evidence.get("avoidable_errors")))
    gates = candidate_gates(
        _scores(models_dir, model_id, production, holdout, newest.describe("days")), settings,
        training=training, local_shift=_local_shift(record, decision, holdout),
        label_coverage=_label_coverage(con, models_dir, record, production),
        long_term=(_scores(models_dir, model_id, production, long_term,
                           f"long-term holdout rows over {long_term['day'].nunique()} days")
                   if not long_term.empty else None),
        shift_detected=newest.since_shift,
        population=_scores(models_dir, model_id, production, window_holdout, "holdout rows of the window"))
    record_gate_results(con, model_id, gates)
    failed = blocking_failures(gates)
    if failed:
        reject(con, model_id, "; ".join(f"{g.name}: {g.reason}" for g in failed), actor="gates")
    return gates
