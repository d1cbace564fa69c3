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
A warehouse without any tables yet gives neutral evidence, and each silent signal says why:

>>> import duckdb
>>> from ct_assets.core.decision.policy_config import load_policy_config
>>> evidence = gather_evidence(duckdb.connect(), "2024-03-14", load_policy_config())
>>> evidence.drift_scope, evidence.production_model_exists
('none', False)
>>> evidence.evidence_ids["note:drift"]
'no drift report for 2024-03-14: drift treated as none'
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
from ct_assets.core.decision.evidence_rules import (
    AUC_METRIC,
    COST_HISTORY_RUNS,
    ERROR_METRIC,
    TRAINING_PATHS,
    BatchError,
    ComplaintSummary,
    ConceptSummary,
    CostHistory,
    DriftSummary,
    ErrorHistory,
    LabelCounts,
    MetricChange,
    PolicyInputs,
    ProductionSummary,
    affected_regions,
    build_evidence,
    drop_counts,
    is_shifted,
    model_age,
    shift_start,
)
from ct_assets.core.decision.policy import Evidence
from ct_assets.core.decision.policy_config import PolicyConfig
from ct_assets.core.release.registry import ModelRecord, chain_root, get_model, get_production

logger = logging.getLogger(__name__)

NOTE_PREFIX = "note:"
DIVERGENCE_METRIC = "fine_tune_divergence"  # key of a fine-tuned model's metrics holding its divergence
# Registry column holding a run's cost in each policy cost unit (identifiers, never user values).
_COST_COLUMNS: dict[str, str] = {"cpu_seconds": "cpu_s", "kwh": "energy_kwh", "train_gflops": "train_gflops"}
# The day a registry row belongs to (its data window end; its creation day when unknown), as SQL.
_MODEL_DAY = "coalesce(data_window_end, CAST(created_at AS DATE))"
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

    drift, report_model_id = _drift_evidence(con, day, ids, notes)
    concept = _concept_evidence(con, day, ids, notes)
    complaints = _complaint_evidence(con, day, ids, notes)
    production = get_production(con) if has_table(con, "model_registry") else None
    model = _production_evidence(production, as_of, con, ids, notes)
    if production is not None and report_model_id not in (None, production.model_id):
        notes["drift_model"] = (f"the drift report compared traffic with model {report_model_id}, "
                                f"not the current production model {production.model_id}")
    labels = _label_evidence(con, as_of, production, config, recent_window_days, notes)
    cost = _cost_evidence(con, as_of, config, notes)
    errors = _error_evidence(con, as_of, production, notes)
    regions = affected_regions(drift.scope, drift.affected_segments)
    signoff = [region for region in regions if region in config.jurisdiction.signoff_regions]
    if signoff:
        notes["jurisdiction"] = f"affected regions {', '.join(signoff)} require human sign-off by regulation"

    for source, note in notes.items():
        logger.info("evidence for %s: %s", day, note)
    evidence_ids = {**ids, **{f"{NOTE_PREFIX}{source}": note for source, note in notes.items()}}
    inputs = PolicyInputs(risk_tier=risk_tier, architecture_change_required=architecture_change_required,
                          rapid_rollback_needed=rapid_rollback_needed, evidence_ids=evidence_ids)
    return build_evidence(config, drift=drift, concept=concept, complaints=complaints, labels=labels,
                          production=model, cost=cost, regions=regions, errors=errors, inputs=inputs)


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
                    notes: dict[str, str]) -> tuple[DriftSummary, str | None]:
    """The day's newest drift report, and the model whose training rows it compared traffic with."""
    row = _latest(con, "drift_reports",
                  "SELECT report_id, reference_id, model_id, scope, severity, severity_level, affected_segments, "
                  "drifted_features, max_unseen_share FROM drift_reports WHERE partition = ? "
                  "ORDER BY created_at DESC LIMIT 1", day)
    if row is None:
        notes["drift"] = f"no drift report for {day}: drift treated as none"
        return DriftSummary(), None
    report_id, reference_id, model_id, scope, severity, level, segments, drifted, unseen = row
    ids["drift_report_id"] = report_id
    ids["drift_reference_id"] = reference_id
    summary = DriftSummary(scope, float(severity), level, tuple(segments or ()), tuple(drifted or ()),
                           0.0 if unseen is None or math.isnan(unseen) else float(unseen))
    return summary, model_id


def _concept_evidence(con: duckdb.DuckDBPyConnection, day: str, ids: dict[str, str],
                      notes: dict[str, str]) -> ConceptSummary:
    rows = _fetch(con, "concept_drift_results",
                  "SELECT verdict, metric, reference_value, current_value, ci_high, covariate_drift_small, "
                  "reference_id FROM concept_drift_results WHERE partition = ? ORDER BY metric", [day])
    if not rows:
        notes["concept_drift"] = f"no concept drift result for {day}: no concept drift and no metric drop assumed"
        return ConceptSummary()
    verdict, covariate_small, reference_id = rows[0][0], rows[0][5], rows[0][6]
    ids["concept_drift_reference_id"] = reference_id
    if verdict == "insufficient_labels":
        notes["concept_drift"] = f"concept drift not testable on {day}: too few labelled rows"
    if covariate_small is None:
        notes["covariate_drift"] = "covariate drift size unknown (no drift severity): not treated as small"
    auc_rows = [row for row in rows if row[1] == AUC_METRIC]
    auc = MetricChange(*auc_rows[0][2:5]) if auc_rows and None not in auc_rows[0][2:5] else None
    if auc is not None and not drop_counts(auc):
        notes["metric"] = (f"AUC change {auc.current_value - auc.reference_value:+.4f} is within its confidence "
                           "interval: no metric drop")
    elif auc is None and verdict != "insufficient_labels":
        notes["metric"] = f"no AUC in the concept drift result of {day}: no metric drop assumed"
    return ConceptSummary(degraded=verdict == "degraded", covariate_drift_small=bool(covariate_small), auc=auc)


def _complaint_evidence(con: duckdb.DuckDBPyConnection, day: str, ids: dict[str, str],
                        notes: dict[str, str]) -> ComplaintSummary:
    row = _latest(con, "complaint_results",
                  "SELECT alert, rate_ratio, status, rate, baseline_orders, baseline_complaints "
                  "FROM complaint_results WHERE partition = ? ORDER BY created_at DESC LIMIT 1", day)
    if row is None:
        notes["complaints"] = f"no complaint result for {day}: complaint rate treated as at baseline"
        return ComplaintSummary()
    alert, ratio, status, rate, baseline_orders, baseline_complaints = row
    ids["complaint_partition"] = day
    if ratio is None or math.isnan(ratio):
        notes["complaints"] = f"complaint rate ratio unavailable ({status}): treated as 1"
        ratio = 1.0
    elif math.isinf(ratio):
        ratio = rate / ((baseline_complaints + _ZERO_BASELINE_COMPLAINTS) / baseline_orders)
        notes["complaints"] = (f"no complaints in the baseline: rate ratio estimated as {ratio:.3g} with "
                               f"{_ZERO_BASELINE_COMPLAINTS} baseline complaints")
    return ComplaintSummary(bool(alert), float(ratio))


def _production_evidence(production: ModelRecord | None, as_of: date, con: duckdb.DuckDBPyConnection,
                         ids: dict[str, str], notes: dict[str, str]) -> ProductionSummary | None:
    if production is None:
        notes["production_model"] = "no production model: age and fine-tune chain are 0"
        return None
    ids["production_model_id"] = production.model_id
    if _model_day(production) > as_of:
        notes["production_model_age"] = (f"production model's data ends after {as_of} "
                                         f"({_model_day(production)}): age taken as 0")
    divergence = production.metrics.get(DIVERGENCE_METRIC) if production.training_path == "fine_tune" else None
    if not isinstance(divergence, (int, float)) or isinstance(divergence, bool) or not math.isfinite(divergence):
        divergence = None
    return ProductionSummary(age_days=model_age(as_of.toordinal(), _model_day(production).toordinal()),
                             fine_tunes_since_full_retrain=_fine_tune_attempts(con, production, notes),
                             fine_tune_divergence=None if divergence is None else float(divergence))
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
                    config: PolicyConfig, recent_window_days: int, notes: dict[str, str]) -> LabelCounts:
    """Label counts as of ``as_of``: since training, since the current shift, and in the recent window."""
    if not has_table(con, "labels"):
        notes["labels"] = "no labels table: no labels counted"
        return LabelCounts()

    def labels_from(first_event_day: date | None) -> int:
        if first_event_day is None:
            return _count(con, "SELECT count(*) FROM labels WHERE arrival_day <= ?", [as_of])
        return _count(con, "SELECT count(*) FROM labels WHERE arrival_day <= ? AND event_day >= ?",
                      [as_of, first_event_day])

    # Labels of events the production model never trained on; every label for a first model.
    since_training = None if production is None else _model_day(production) + timedelta(days=1)
    start = current_shift_start(con, as_of, config) if production is not None else None
    if start is not None:
        notes["new_regime"] = f"the current shift started on {start}: labels counted from then"

    window_start = as_of - timedelta(days=recent_window_days - 1)
    labelled = _count(con, "SELECT count(*) FROM labels WHERE arrival_day <= ? AND event_day BETWEEN ? AND ?",
                      [as_of, window_start, as_of])
    orders = (_count(con, "SELECT count(*) FROM raw_events WHERE day BETWEEN ? AND ?", [window_start, as_of])
              if has_table(con, "raw_events") else 0)
    if orders == 0:
        notes["label_coverage"] = f"no orders in {window_start}..{as_of}: label coverage 0"
    per_day = [int(row[0]) for row in con.execute(
        "SELECT count(*) FROM labels WHERE arrival_day <= ? AND event_day BETWEEN ? AND ? GROUP BY event_day",
        [as_of, window_start, as_of]).fetchall()]
    return LabelCounts(since_training=labels_from(since_training),
                       since_shift_start=None if start is None else labels_from(start),
                       recent_labelled=labelled, recent_orders=orders,
                       typical_batch_rows=int(statistics.median(per_day)) if per_day else 0,
                       newest_period=as_of.toordinal(), shift_start_period=None if start is None else start.toordinal())


def _error_evidence(con: duckdb.DuckDBPyConnection, as_of: date, production: ModelRecord | None,
                    notes: dict[str, str]) -> ErrorHistory:
    """The production model's labelled error per day since its data ends (the concept-drift results' error
    rate next to its reference holdout), and the newest candidate the gates rejected since it was made."""
    if production is None or not has_table(con, "concept_drift_results"):
        return ErrorHistory()
    rows = con.execute(
        "SELECT partition, n_current, current_value, reference_value FROM concept_drift_results "
        "WHERE metric = ? AND model_id = ? AND partition > ? AND partition <= ? AND n_current > 0 "
        "ORDER BY partition", [ERROR_METRIC, production.model_id, _model_day(production).isoformat(),
                               as_of.isoformat()]).fetchall()
    batches = tuple(BatchError(parse_iso_day(day).toordinal(), int(n), float(error), float(reference))
                    for day, n, error, reference in rows if None not in (n, error, reference))
    if not batches:
        notes["avoidable_loss"] = "no labelled error of the production model since its data ends: not measured"
        return ErrorHistory()
    rejected = con.execute(
        f"SELECT training_path, {_MODEL_DAY} FROM model_registry WHERE status = 'rejected' AND created_at > ? "
        f"AND {_MODEL_DAY} <= ? ORDER BY created_at DESC LIMIT 1", [production.created_at, as_of]).fetchall()
    if not rejected or rejected[0][0] not in TRAINING_PATHS:
        return ErrorHistory(batches, measured=True)
    path, day = rejected[0]
    since = _count(con, "SELECT count(*) FROM labels WHERE arrival_day <= ? AND event_day > ?", [as_of, day]) \
        if has_table(con, "labels") else 0
    notes["rejection"] = f"a {path} candidate for {day} was rejected since the production model was made"
    return ErrorHistory(batches, True, path, day.toordinal(), since)


def current_shift_start(con: duckdb.DuckDBPyConnection, as_of: date, config: PolicyConfig) -> date | None:
    """First day of the unbroken run of shifted days ending on ``as_of`` (None if ``as_of`` is not shifted);
    a day is shifted when one of its drift reports or concept drift results says so (:func:`is_shifted`)."""
    reports = _fetch(con, "drift_reports", "SELECT partition, scope, severity FROM drift_reports "
                     "WHERE partition <= ?", [as_of.isoformat()])
    degraded = _fetch(con, "concept_drift_results", "SELECT DISTINCT partition FROM concept_drift_results "
                      "WHERE partition <= ? AND verdict = 'degraded'", [as_of.isoformat()])
    shifted = {parse_iso_day(day).toordinal() for day, scope, severity in reports
               if is_shifted(scope, severity, False, config)}
    shifted |= {parse_iso_day(row[0]).toordinal() for row in degraded}
    start = shift_start(shifted, as_of.toordinal())
    return None if start is None else date.fromordinal(start)


def _cost_evidence(con: duckdb.DuckDBPyConnection, as_of: date, config: PolicyConfig,
                   notes: dict[str, str]) -> CostHistory:
    """What the runs of the budget period ending on ``as_of`` spent, and the newest measured runs per path."""
    if not has_table(con, "model_registry"):
        notes["cost"] = "no model registry: nothing spent, default cost estimates"
        return CostHistory()
    column = _COST_COLUMNS[config.cost.unit]
    model_day = _MODEL_DAY
    period_start = as_of - timedelta(days=config.cost.period_days - 1)
    spent, runs, unmeasured = con.execute(
        f"SELECT coalesce(sum({column}), 0), count(*), count(*) - count({column}) FROM model_registry "
        f"WHERE {model_day} BETWEEN ? AND ?", [period_start, as_of]).fetchall()[0]
    if unmeasured:
        notes["cost"] = f"{unmeasured} of {runs} runs in {period_start}..{as_of} have no measured {config.cost.unit}"
    measured = {path: tuple(float(row[0]) for row in con.execute(
        f"SELECT {column} FROM model_registry WHERE training_path = ? AND {column} IS NOT NULL "
        f"AND {model_day} <= ? ORDER BY {model_day} DESC, created_at DESC LIMIT ?",
        [path, as_of, COST_HISTORY_RUNS]).fetchall()) for path in TRAINING_PATHS}
    return CostHistory(float(spent), measured["retrain"], measured["fine_tune"])


# --- helpers -------------------------------------------------------------------------------------------


def _model_day(record: ModelRecord) -> date:
    return record.data_window_end if record.data_window_end is not None else record.created_at.date()


def _latest(con: duckdb.DuckDBPyConnection, table: str, sql: str, day: str) -> tuple[Any, ...] | None:
    """The one row ``sql`` selects for ``day`` over ``table``, or None (no row, or no table yet)."""
    rows = _fetch(con, table, sql, [day])
    return rows[0] if rows else None


def _fetch(con: duckdb.DuckDBPyConnection, table: str, sql: str, params: list[Any]) -> list[tuple[Any, ...]]:
    """Rows of ``sql`` over ``table``, or none when the table does not exist yet."""
    return con.execute(sql, params).fetchall() if has_table(con, table) else []


def _count(con: duckdb.DuckDBPyConnection, sql: str, params: list[Any]) -> int:
    return int(con.execute(sql, params).fetchall()[0][0])
