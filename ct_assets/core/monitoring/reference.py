"""Monitoring against a versioned reference (what the serving model learned): data drift,
concept drift of the serving model, and complaint rates.

The reference window is the production model's training window, so it is re-baselined the
moment a new model is promoted. Before the first model exists, the first ``bootstrap_days``
landed days serve as the reference. Every report records which reference and model it used.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import duckdb

from ct_assets.core.data import schema
from ct_assets.core.data.features import ensure_features_table, load_features
from ct_assets.core.monitoring.complaints import (
    ComplaintConfig,
    ComplaintTestResult,
    evaluate_complaint_rate,
)
from ct_assets.core.monitoring.concept_drift import (
    ConceptDriftConfig,
    ConceptDriftResult,
    detect_concept_drift,
)
from ct_assets.core.monitoring.drift.plot import write_drift_plot
from ct_assets.core.monitoring.drift.report import build_drift_report
from ct_assets.core.monitoring.drift.types import DriftConfig, DriftReport
from ct_assets.core.monitoring.store import (
    drift_report_id,
    ensure_drift_tables,
    write_complaint_result,
    write_concept_drift_result,
    write_drift_report,
)
from ct_assets.core.release.registry import (
    chain_root,
    ensure_registry_tables,
    get_model,
    get_production,
)
from ct_assets.core.training.artifacts import load_model
from ct_assets.core.training.candidates import split_train_holdout
from ct_assets.core.training.model import predict_proba
from ct_assets.core.training.preprocessing import MODEL_INPUTS

if TYPE_CHECKING:
    import pandas as pd


@dataclass(frozen=True)
class Reference:
    reference_id: str
    model_id: str | None
    start: date
    end: date


@dataclass(frozen=True)
class MonitoringResult:
    report_id: str
    day: str
    reference: Reference
    report: DriftReport
    plot_path: Path


def current_reference(con: duckdb.DuckDBPyConnection, bootstrap_days: int) -> Reference | None:
    """The production model's training window, or the first ``bootstrap_days`` days before any model."""
    ensure_registry_tables(con)
    ensure_features_table(con)
    production = get_production(con)
    if production is not None and production.data_window_start and production.data_window_end:
        start, end = production.data_window_start, production.data_window_end
        return Reference(f"{production.model_id}@{start}..{end}", production.model_id, start, end)
    first = con.execute("SELECT min(day) FROM features").fetchall()[0][0]
    if first is None:
        return None
    end = first + timedelta(days=bootstrap_days - 1)
    return Reference(f"bootstrap@{first}..{end}", None, first, end)


def _sample(frame: pd.DataFrame, max_rows: int, seed: int) -> pd.DataFrame:
    if len(frame) <= max_rows:
        return frame.reset_index(drop=True)
    return frame.sample(n=max_rows, random_state=seed).sort_values("event_id").reset_index(drop=True)


def monitor_day(con: duckdb.DuckDBPyConnection, models_dir: Path, reports_dir: Path, day: str,
                config: DriftConfig, bootstrap_days: int, max_reference_rows: int = 50_000) -> MonitoringResult:
    """Build, plot and store the drift report of ``day``'s features against the current reference.

    Re-running a day replaces its stored report (same id for the same reference and model).
    """
    reference = current_reference(con, bootstrap_days)
    if reference is None:
        raise ValueError("no features yet: nothing to use as a drift reference")
    reference_rows = _sample(load_features(con, str(reference.start), str(reference.end)),
                             max_reference_rows, config.seed)
    current = load_features(con, day, day)
    if current.empty:
        raise ValueError(f"no features for {day}: build features before the drift report")
    reference_scores = current_scores = None
    if reference.model_id is not None:
        model = load_model(models_dir, reference.model_id)
        reference_scores = predict_proba(model, reference_rows[list(MODEL_INPUTS)])
        current_scores = predict_proba(model, current[list(MODEL_INPUTS)])
    report = build_drift_report(reference_rows, current, config, reference_scores, current_scores)
    report_id = drift_report_id(day, reference.reference_id, reference.model_id)
    plot_path = write_drift_plot(reference_rows, current, report, reports_dir / f"drift-{day}-{report_id}.png")
    write_drift_report(con, report, partition=day, reference_id=reference.reference_id,
                       model_id=reference.model_id, plot_path=str(plot_path))
    return MonitoringResult(report_id, day, reference, report, plot_path)


@dataclass(frozen=True)
class ConceptDriftOutcome:
    day: str
    reference: Reference | None
    result: ConceptDriftResult | None
    note: str


def concept_drift_for_day(con: duckdb.DuckDBPyConnection, models_dir: Path, day: str,
                          config: ConceptDriftConfig, recent_days: int = 3) -> ConceptDriftOutcome:
    """The production model's labelled performance: labels that arrived in the last ``recent_days``
    (ending on ``day``) against its fixed holdout rows of the window of the last full retrain in its
    chain (its own window for a retrained model).

    P(y|X) moving shows up here even when the features do not move (``market_shift``). The reference
    is the retrain's window, not a fine-tune's: a fine-tune that failed to learn a new regime would
    otherwise make its own poor level the baseline, and the drift it left unfixed would stop showing.
    """
    reference = current_reference(con, bootstrap_days=1)
    if reference is None or reference.model_id is None:
        return ConceptDriftOutcome(day, reference, None, "no production model yet: nothing to evaluate")
    model = load_model(models_dir, reference.model_id)
    production = get_model(con, reference.model_id)
    root = chain_root(con, production) if production is not None else None
    start, end = ((root.data_window_start, root.data_window_end)
                  if root is not None and root.data_window_start and root.data_window_end
                  else (reference.start, reference.end))
    _, holdout = split_train_holdout(load_features(con, str(start), str(end), labelled_only=True))
    recent = con.execute(
        "SELECT f.*, l.is_fraud FROM labels l JOIN features f USING (event_id) "
        "WHERE l.arrival_day BETWEEN CAST(? AS DATE) - CAST(? AS INTEGER) + 1 AND CAST(? AS DATE) "
        "AND f.day > CAST(? AS DATE) ORDER BY f.event_id",
        [day, recent_days, day, str(reference.end)]).fetchdf()
    if holdout.empty or recent.empty:
        return ConceptDriftOutcome(day, reference, None,
                                   f"not enough labels: {len(holdout)} reference and {len(recent)} recent rows")
    ensure_drift_tables(con)
    severity = con.execute("SELECT max(severity) FROM drift_reports WHERE partition = ?", [day]).fetchall()
    result = detect_concept_drift(
        holdout[schema.FRAUD_LABEL_COLUMN].to_numpy(), predict_proba(model, holdout[list(MODEL_INPUTS)]),
        recent[schema.FRAUD_LABEL_COLUMN].to_numpy(), predict_proba(model, recent[list(MODEL_INPUTS)]),
        config, covariate_severity=severity[0][0] if severity and severity[0][0] is not None else None)
    write_concept_drift_result(con, result, partition=day, reference_id=reference.reference_id,
                               model_id=reference.model_id)
    return ConceptDriftOutcome(day, reference, result, result.reason)


def complaints_for_day(con: duckdb.DuckDBPyConnection, day: str, config: ComplaintConfig) -> ComplaintTestResult:
    """Test the day's complaint count against the preceding baseline days, and store the result."""
    history = con.execute(
        "SELECT day, orders, complaints FROM complaints WHERE day <= CAST(? AS DATE) "
        "AND day > CAST(? AS DATE) - CAST(? AS INTEGER) - 1 ORDER BY day",
        [day, day, config.baseline_days]).fetchdf()
    if history.empty or str(history["day"].iloc[-1])[:10] != day:
        raise ValueError(f"no complaint count ingested for {day}")
    result = evaluate_complaint_rate(history, day, config)
    write_complaint_result(con, result, partition=day)
    return result
