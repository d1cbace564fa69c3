"""Gather the policy's :class:`~ct_assets.core.decision.policy.Evidence` for one day from the warehouse.

Only summary tables and counts are read, never raw rows into Python:

* ``drift_reports`` (partition = day): scope, severity, affected segments, drifted features, unseen share;
* ``concept_drift_results`` (partition = day): verdict, AUC drop, whether covariate drift was small;
* ``complaint_results`` (partition = day): alert and rate ratio;
* ``labels`` / ``raw_events``: row counts (labels that had arrived by ``day``);
* ``model_registry``: the production model (age, fine-tune chain, divergence), the compute spent in the
  budget period and the measured cost of recent runs of each training path.

Everything is read *as of* ``day`` (labels arrived by then, runs whose data window ended by then), so
re-evaluating a day gives the same evidence as long as the registry's production pointer is unchanged.

Time of a model
---------------
A model belongs to the day its data window ends (``data_window_end``; ``created_at`` only when the window
is unknown). ``created_at`` is wall-clock time, which in a simulation or a backfill has nothing to do with
the partition day being decided, whereas the window end is the day the run was made for.

Missing sources
---------------
A missing table or row (no drift report yet, no labels, no production model) gives neutral evidence and a
plain-language note stored in ``evidence_ids`` under a ``note:<source>`` key, so the decision record shows
why a signal was silent. Real ids use plain keys (``drift_report_id``, ``production_model_id``, ...).

Example
-------
>>> evidence = gather_evidence(con, "2024-03-14", load_policy_config())  # doctest: +SKIP
>>> evidence.drift_scope, evidence.evidence_ids["drift_report_id"]  # doctest: +SKIP
('local', '5f0c...')
"""

from __future__ import annotations

import logging
import math
import statistics
from collections.abc import Mapping
from dataclasses import fields
from datetime import date, timedelta
from typing import Any

import duckdb

from ct_assets.core.common import has_table, parse_iso_day
from ct_assets.core.data import schema
from ct_assets.core.decision.policy import Evidence, compute_budget_left
from ct_assets.core.decision.policy_config import PolicyConfig
from ct_assets.core.release.registry import ModelRecord, chain_root, get_model, get_production

logger = logging.getLogger(__name__)

NOTE_PREFIX = "note:"
AUC_METRIC = "auc"  # the policy's metric thresholds are in AUC points
COST_HISTORY_RUNS = 5  # measured runs per training path whose median is the cost estimate
DIVERGENCE_METRIC = "fine_tune_divergence"  # key of a fine-tuned model's metrics holding its divergence
# Registry column holding a run's cost in each policy cost unit (identifiers, never user values).
_COST_COLUMNS: dict[str, str] = {"cpu_seconds": "cpu_s", "kwh": "energy_kwh"}
# Continuity correction for a complaint baseline with zero complaints, where the raw ratio is infinite.
_ZERO_BASELINE_COMPLAINTS = 0.5


def gather_evidence(
    con: duckdb.DuckDBPyConnection,
    day: str,
    config: PolicyConfig,
    risk_tier: str = "low",
    architecture_change_required: bool = False,
    rapid_rollback_needed: bool = False,
    recent_window_days: int = 7,
) -> Evidence:
    """The evidence the policy weighs for ``day`` (``YYYY-MM-DD``), read from summary tables.

    ``recent_window_days`` is the window (ending on ``day``) whose label coverage says whether the
    labels are representative. Risk tier and the two flags come from the caller (config or operator).
    """
    as_of = parse_iso_day(day)
    if isinstance(recent_window_days, bool) or not isinstance(recent_window_days, int) or recent_window_days < 1:
        raise ValueError(f"recent_window_days must be a positive integer, got {recent_window_days!r}")
    ids: dict[str, str] = {}
    notes: dict[str, str] = {}

    drift = _drift_evidence(con, day, ids, notes)
    concept = _concept_evidence(con, day, ids, notes)
    complaints = _complaint_evidence(con, day, ids, notes)
    production = get_production(con) if has_table(con, "model_registry") else None
    model = _production_evidence(production, as_of, con, ids, notes)
    if production is not None and drift["report_model_id"] not in (None, production.model_id):
        notes["drift_model"] = (f"the drift report compared traffic with model {drift['report_model_id']}, "
                                f"not the current production model {production.model_id}")
    labels = _label_evidence(con, as_of, production, config, recent_window_days, notes)
    cost = _cost_evidence(con, as_of, config, notes)
    regions = _affected_regions(drift["drift_scope"], drift["affected_segments"])
    signoff = [region for region in regions if region in config.jurisdiction.signoff_regions]
    if signoff:
        notes["jurisdiction"] = f"affected regions {', '.join(signoff)} require human sign-off by regulation"

    for source, note in notes.items():
        logger.info("evidence for %s: %s", day, note)
    evidence_ids = {**ids, **{f"{NOTE_PREFIX}{source}": note for source, note in notes.items()}}
    return Evidence(
        drift_scope=drift["drift_scope"],
        drift_severity_score=drift["drift_severity_score"],
        drift_severity_level=drift["drift_severity_level"],
        affected_segments=drift["affected_segments"],
        drifted_features=drift["drifted_features"],
        unseen_category_share=drift["unseen_category_share"],
        concept_drift_detected=concept["concept_drift_detected"],
        metric_drop=concept["metric_drop"],
        covariate_drift_small=concept["covariate_drift_small"],
        complaint_alert=complaints["complaint_alert"],
        complaint_rate_ratio=complaints["complaint_rate_ratio"],
        new_labels_since_training=labels["new_labels_since_training"],
        label_coverage_recent=labels["label_coverage_recent"],
        labelled_rows_new_regime=labels["labelled_rows_new_regime"],
        production_model_age_days=model["production_model_age_days"],
        fine_tunes_since_full_retrain=model["fine_tunes_since_full_retrain"],
        fine_tune_divergence=model["fine_tune_divergence"],
        compute_budget_left=cost["compute_budget_left"],
        retrain_cost_estimate=cost["retrain_cost_estimate"],
        fine_tune_cost_estimate=cost["fine_tune_cost_estimate"],
        risk_tier=risk_tier,
        production_model_exists=production is not None,
        affected_regions=regions,
        architecture_change_required=architecture_change_required,
        rapid_rollback_needed=rapid_rollback_needed,
        evidence_ids=evidence_ids,
    )


def evidence_to_dict(evidence: Evidence) -> dict[str, Any]:
    """Every Evidence field as plain JSON values (tuples become lists, ``evidence_ids`` a sorted dict)."""
    if not isinstance(evidence, Evidence):
        raise ValueError(f"evidence must be an Evidence, got {type(evidence).__name__}")
    result: dict[str, Any] = {}
    for field in fields(Evidence):
        value = getattr(evidence, field.name)
        if isinstance(value, tuple):
            value = list(value)
        elif isinstance(value, Mapping):
            value = {key: value[key] for key in sorted(value)}
        result[field.name] = value
    return result


def evidence_notes(evidence: Evidence) -> dict[str, str]:
    """The notes ``gather_evidence`` left about missing or surprising sources, by source name."""
    return {key[len(NOTE_PREFIX):]: value for key, value in evidence.evidence_ids.items()
            if key.startswith(NOTE_PREFIX)}


# --- one reader per source -----------------------------------------------------------------------------


def _drift_evidence(con: duckdb.DuckDBPyConnection, day: str, ids: dict[str, str],
                    notes: dict[str, str]) -> dict[str, Any]:
    neutral: dict[str, Any] = {"drift_scope": "none", "drift_severity_score": 0.0, "drift_severity_level": "none",
                               "affected_segments": (), "drifted_features": (), "unseen_category_share": 0.0,
                               "report_model_id": None}
    rows = _fetch(con, "drift_reports",
                  "SELECT report_id, reference_id, model_id, scope, severity, severity_level, affected_segments, "
                  "drifted_features, max_unseen_share FROM drift_reports WHERE partition = ? "
                  "ORDER BY created_at DESC LIMIT 1", [day])
    if not rows:
        notes["drift"] = f"no drift report for {day}: drift treated as none"
        return neutral
    report_id, reference_id, model_id, scope, severity, level, segments, drifted, unseen = rows[0]
    ids["drift_report_id"] = report_id
    ids["drift_reference_id"] = reference_id
    return {
        "drift_scope": scope, "drift_severity_score": float(severity), "drift_severity_level": level,
        "affected_segments": tuple(segments or ()), "drifted_features": tuple(drifted or ()),
        "unseen_category_share": 0.0 if unseen is None or math.isnan(unseen) else float(unseen),
        "report_model_id": model_id,
    }


def _concept_evidence(con: duckdb.DuckDBPyConnection, day: str, ids: dict[str, str],
                      notes: dict[str, str]) -> dict[str, Any]:
    rows = _fetch(con, "concept_drift_results",
                  "SELECT verdict, metric, reference_value, current_value, ci_high, covariate_drift_small, "
                  "reference_id FROM concept_drift_results WHERE partition = ? ORDER BY metric", [day])
    if not rows:
        notes["concept_drift"] = f"no concept drift result for {day}: no concept drift and no metric drop assumed"
        return {"concept_drift_detected": False, "metric_drop": 0.0, "covariate_drift_small": False}
    verdict, covariate_small, reference_id = rows[0][0], rows[0][5], rows[0][6]
    ids["concept_drift_reference_id"] = reference_id
    if verdict == "insufficient_labels":
        notes["concept_drift"] = f"concept drift not testable on {day}: too few labelled rows"
    if covariate_small is None:
        notes["covariate_drift"] = "covariate drift size unknown (no drift severity): not treated as small"
    auc = [row for row in rows if row[1] == AUC_METRIC]
    metric_drop = 0.0
    if auc and None not in (auc[0][2], auc[0][3], auc[0][4]):
        _, _, reference_value, current_value, ci_high, _, _ = auc[0]
        # A drop counts only when the bootstrap CI of (current - reference) lies wholly below zero:
        # a point estimate inside its noise must not trigger the falling-metric rule.
        if ci_high < 0:
            metric_drop = float(reference_value - current_value)
        else:
            notes["metric"] = (f"AUC change {current_value - reference_value:+.4f} is within its confidence "
                               "interval: no metric drop")
    elif verdict != "insufficient_labels":
        notes["metric"] = f"no AUC in the concept drift result of {day}: no metric drop assumed"
    return {"concept_drift_detected": verdict == "degraded", "metric_drop": metric_drop,
            "covariate_drift_small": bool(covariate_small)}


def _complaint_evidence(con: duckdb.DuckDBPyConnection, day: str, ids: dict[str, str],
                        notes: dict[str, str]) -> dict[str, Any]:
    rows = _fetch(con, "complaint_results",
                  "SELECT alert, rate_ratio, status, rate, baseline_orders, baseline_complaints "
                  "FROM complaint_results WHERE partition = ? ORDER BY created_at DESC LIMIT 1", [day])
    if not rows:
        notes["complaints"] = f"no complaint result for {day}: complaint rate treated as at baseline"
        return {"complaint_alert": False, "complaint_rate_ratio": 1.0}
    alert, ratio, status, rate, baseline_orders, baseline_complaints = rows[0]
    ids["complaint_partition"] = day
    if ratio is None or math.isnan(ratio):
        notes["complaints"] = f"complaint rate ratio unavailable ({status}): treated as 1"
        ratio = 1.0
    elif math.isinf(ratio):
        ratio = rate / ((baseline_complaints + _ZERO_BASELINE_COMPLAINTS) / baseline_orders)
        notes["complaints"] = (f"no complaints in the baseline: rate ratio estimated as {ratio:.3g} with "
                               f"{_ZERO_BASELINE_COMPLAINTS} baseline complaints")
    return {"complaint_alert": bool(alert), "complaint_rate_ratio": float(ratio)}


def _production_evidence(production: ModelRecord | None, as_of: date, con: duckdb.DuckDBPyConnection,
                         ids: dict[str, str], notes: dict[str, str]) -> dict[str, Any]:
    if production is None:
        notes["production_model"] = "no production model: age and fine-tune chain are 0"
        return {"production_model_age_days": 0.0, "fine_tunes_since_full_retrain": 0, "fine_tune_divergence": None}
    ids["production_model_id"] = production.model_id
    age = float((as_of - _model_day(production)).days)
    if age < 0:
        notes["production_model_age"] = (f"production model's data ends after {as_of} "
                                         f"({_model_day(production)}): age taken as 0")
        age = 0.0
    divergence = production.metrics.get(DIVERGENCE_METRIC) if production.training_path == "fine_tune" else None
    if not isinstance(divergence, (int, float)) or isinstance(divergence, bool) or not math.isfinite(divergence):
        divergence = None
    return {"production_model_age_days": age,
            "fine_tunes_since_full_retrain": _fine_tune_attempts(con, production, notes),
            "fine_tune_divergence": None if divergence is None else float(divergence)}


def _fine_tune_attempts(con: duckdb.DuckDBPyConnection, production: ModelRecord, notes: dict[str, str]) -> int:
    """Fine-tunes since the last full retrain: the promoted chain plus fine-tune candidates the gates
    rejected since that retrain. Counting failures too means repeated fine-tunes that cannot fix a
    shift lead to a retrain (technical debt) instead of the same failing patch every day."""
    chain = _fine_tune_chain(con, production, notes)
    root = chain_root(con, production)
    rejected = con.execute(
        "SELECT count(*) FROM model_registry WHERE training_path = 'fine_tune' AND status = 'rejected' "
        "AND created_at > ?", [root.created_at]).fetchall()[0][0]
    if rejected:
        notes["fine_tune_attempts"] = (f"{chain} fine-tunes in the serving chain and {rejected} rejected "
                                       f"fine-tune candidates since {root.model_id}")
    return chain + int(rejected)


def _fine_tune_chain(con: duckdb.DuckDBPyConnection, production: ModelRecord, notes: dict[str, str]) -> int:
    """Consecutive fine-tunes from production back to the last full retrain (parent links in the registry)."""
    count, seen = 0, set()
    current: ModelRecord | None = production
    while current is not None and current.training_path == "fine_tune":
        if current.model_id in seen:
            notes["fine_tune_chain"] = f"parent links loop back to {current.model_id}: chain counted once"
            break
        seen.add(current.model_id)
        count += 1
        if current.parent_model_id is None:
            notes["fine_tune_chain"] = f"fine-tuned model {current.model_id} names no parent: chain ends there"
            break
        parent = get_model(con, current.parent_model_id)
        if parent is None:
            notes["fine_tune_chain"] = (f"parent {current.parent_model_id} of {current.model_id} is not in the "
                                        "registry: chain ends there")
        current = parent
    return count


def _label_evidence(con: duckdb.DuckDBPyConnection, as_of: date, production: ModelRecord | None,
                    config: PolicyConfig, recent_window_days: int, notes: dict[str, str]) -> dict[str, Any]:
    """Label counts as of ``as_of``: since training, for the current regime, and coverage of the recent window."""
    if not has_table(con, "labels"):
        notes["labels"] = "no labels table: no labels counted"
        return {"new_labels_since_training": 0, "labelled_rows_new_regime": 0, "label_coverage_recent": 0.0}

    def labels_from(first_event_day: date | None) -> int:
        if first_event_day is None:
            return _count(con, "SELECT count(*) FROM labels WHERE arrival_day <= ?", [as_of])
        return _count(con, "SELECT count(*) FROM labels WHERE arrival_day <= ? AND event_day >= ?",
                      [as_of, first_event_day])

    # Labels of events the production model never trained on; every label for a first model.
    since_training = None if production is None else _model_day(production) + timedelta(days=1)
    new_labels = labels_from(since_training)
    shift_start = _shift_start(con, as_of, config) if production is not None else None
    if shift_start is None:
        regime_rows = new_labels  # no ongoing shift: the new regime is everything since training
    else:
        regime_rows = labels_from(shift_start)
        notes["new_regime"] = f"the current shift started on {shift_start}: labels counted from then"

    window_start = as_of - timedelta(days=recent_window_days - 1)
    labelled = _count(con, "SELECT count(*) FROM labels WHERE arrival_day <= ? AND event_day BETWEEN ? AND ?",
                      [as_of, window_start, as_of])
    orders = (_count(con, "SELECT count(*) FROM raw_events WHERE day BETWEEN ? AND ?", [window_start, as_of])
              if has_table(con, "raw_events") else 0)
    if orders == 0:
        notes["label_coverage"] = f"no orders in {window_start}..{as_of}: label coverage 0"
    coverage = min(1.0, labelled / orders) if orders else 0.0
    return {"new_labels_since_training": new_labels, "labelled_rows_new_regime": regime_rows,
            "label_coverage_recent": coverage}


def _shift_start(con: duckdb.DuckDBPyConnection, as_of: date, config: PolicyConfig) -> date | None:
    """First day of the unbroken run of shifted days ending on ``as_of`` (None if ``as_of`` is not shifted).

    A day is shifted when its drift report passes the policy's drift threshold with a non-``none`` scope
    or its concept drift verdict is ``degraded``; a day without a report ends the run.
    """
    shifted = {row[0] for row in _fetch(
        con, "drift_reports", "SELECT partition FROM drift_reports WHERE partition <= ? AND scope <> 'none' "
        "AND severity >= ?", [as_of.isoformat(), config.drift.min_severity_score])}
    shifted |= {row[0] for row in _fetch(
        con, "concept_drift_results", "SELECT DISTINCT partition FROM concept_drift_results "
        "WHERE partition <= ? AND verdict = 'degraded'", [as_of.isoformat()])}
    start, current = None, as_of
    while current.isoformat() in shifted:
        start, current = current, current - timedelta(days=1)
    return start


def _cost_evidence(con: duckdb.DuckDBPyConnection, as_of: date, config: PolicyConfig,
                   notes: dict[str, str]) -> dict[str, Any]:
    """Budget left in the period ending on ``as_of`` and the median measured cost of each training path."""
    if not has_table(con, "model_registry"):
        notes["cost"] = "no model registry: nothing spent, default cost estimates"
        return {"compute_budget_left": compute_budget_left(0.0, config),
                "retrain_cost_estimate": None, "fine_tune_cost_estimate": None}
    column = _COST_COLUMNS[config.cost.unit]
    model_day = "coalesce(data_window_end, CAST(created_at AS DATE))"
    period_start = as_of - timedelta(days=config.cost.period_days - 1)
    spent, runs, unmeasured = con.execute(
        f"SELECT coalesce(sum({column}), 0), count(*), count(*) - count({column}) FROM model_registry "
        f"WHERE {model_day} BETWEEN ? AND ?", [period_start, as_of]).fetchall()[0]
    if unmeasured:
        notes["cost"] = f"{unmeasured} of {runs} runs in {period_start}..{as_of} have no measured {config.cost.unit}"
    estimates: dict[str, float | None] = {}
    for path in ("retrain", "fine_tune"):
        costs = [row[0] for row in con.execute(
            f"SELECT {column} FROM model_registry WHERE training_path = ? AND {column} IS NOT NULL "
            f"AND {model_day} <= ? ORDER BY {model_day} DESC, created_at DESC LIMIT ?",
            [path, as_of, COST_HISTORY_RUNS]).fetchall()]
        estimates[path] = float(statistics.median(costs)) if costs else None
    return {"compute_budget_left": compute_budget_left(max(0.0, float(spent)), config),
            "retrain_cost_estimate": estimates["retrain"], "fine_tune_cost_estimate": estimates["fine_tune"]}


def _affected_regions(scope: str, segments: tuple[str, ...]) -> tuple[str, ...]:
    """Regions whose traffic shifted: the named regions of a region-only local shift, else every region.

    A global shift, or a local one along another dimension (a category, a protected group), reaches
    orders in every region, so every region's sign-off rule applies.
    """
    if scope == "none":
        return ()
    prefix = "region="
    if scope == "local" and segments and all(segment.startswith(prefix) for segment in segments):
        return tuple(segment[len(prefix):] for segment in segments)
    return schema.REGIONS


# --- helpers -------------------------------------------------------------------------------------------



def _model_day(record: ModelRecord) -> date:
    return record.data_window_end if record.data_window_end is not None else record.created_at.date()



def _fetch(con: duckdb.DuckDBPyConnection, table: str, sql: str, params: list[Any]) -> list[tuple[Any, ...]]:
    """Rows of ``sql`` over ``table``, or none when the table does not exist yet."""
    return con.execute(sql, params).fetchall() if has_table(con, table) else []


def _count(con: duckdb.DuckDBPyConnection, sql: str, params: list[Any]) -> int:
    return int(con.execute(sql, params).fetchall()[0][0])
