"""DuckDB persistence of drift evidence: reports, per-test rows, concept drift and complaints.

Every writer replaces one partition's rows in a single transaction (delete, then insert), so a
re-materialised partition never duplicates rows and a failed write leaves the previous rows intact.

Tables (``ensure_drift_tables`` creates them):

* ``drift_reports``: one row per report (partition, reference, model, severity, scope, flags, cost).
* ``drift_feature_results``: one row per feature x segment x test. ``test`` is ``ks`` / ``chi2``
  for the two-sample tests and ``unseen_share`` for the share of current rows with categories never
  seen in the reference (``effect_size`` holds the share; no p-value). Whole-batch rows have
  ``segment_column = segment_value = 'all'``; model-output rows have ``kind = 'model'``.
* ``concept_drift_results``: one row per metric (AUC, log-loss, error rate) per partition; a
  partition without enough labels gets one row with ``metric`` NULL and its verdict.
* ``complaint_results``: one row per partition (day).

Example analyst query, features that drifted most this week by region::

    SELECT segment_value AS region, feature, max(effect_size) AS effect, count(*) AS days
    FROM drift_feature_results
    WHERE segment_column = 'region' AND drifted AND partition >= '2024-03-01'
    GROUP BY ALL ORDER BY effect DESC;
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from contextlib import contextmanager
from dataclasses import asdict
from typing import TYPE_CHECKING, Iterator

import duckdb
import numpy as np

from ct_assets.core.monitoring.complaints import ComplaintTestResult
from ct_assets.core.monitoring.concept_drift import ConceptDriftResult
from ct_assets.core.monitoring.drift.types import GLOBAL_SEGMENT, DriftReport

if TYPE_CHECKING:
    import pandas as pd

# Copied into the analyst snapshot (core/ops/snapshots.py).
ANALYST_TABLES: tuple[str, ...] = ("drift_reports", "drift_feature_results", "concept_drift_results", "complaint_results")

_DDL = (
    """
    CREATE TABLE IF NOT EXISTS drift_reports (
        report_id VARCHAR NOT NULL,
        partition VARCHAR NOT NULL,
        reference_id VARCHAR NOT NULL,
        model_id VARCHAR,
        severity DOUBLE NOT NULL,
        severity_level VARCHAR NOT NULL,
        scope VARCHAR NOT NULL,
        scope_dimension VARCHAR,
        drifted_features VARCHAR[],
        top_features VARCHAR[],
        affected_segments VARCHAR[],
        affected_traffic_share DOUBLE,
        skipped_segments VARCHAR[],
        flags VARCHAR[],
        max_unseen_share DOUBLE,
        multivariate_drift BOOLEAN,
        multivariate_p_value DOUBLE,
        multivariate_sample_size INTEGER,
        multivariate_seconds DOUBLE,
        prediction_drift BOOLEAN,
        uncertainty_drift BOOLEAN,
        n_reference BIGINT,
        n_current BIGINT,
        cost_seconds DOUBLE,
        plot_path VARCHAR,
        summary_json VARCHAR,
        config_json VARCHAR,
        created_at TIMESTAMP NOT NULL
    )
    """,
    """
    CREATE TABLE IF NOT EXISTS drift_feature_results (
        report_id VARCHAR NOT NULL,
        partition VARCHAR NOT NULL,
        feature VARCHAR NOT NULL,
        kind VARCHAR NOT NULL,
        test VARCHAR NOT NULL,
        segment_column VARCHAR NOT NULL,
        segment_value VARCHAR NOT NULL,
        statistic DOUBLE,
        p_value DOUBLE,
        p_value_corrected DOUBLE,
        effect_size DOUBLE,
        effect_size_name VARCHAR,
        effect_threshold DOUBLE,
        drifted BOOLEAN NOT NULL,
        n_reference BIGINT,
        n_current BIGINT,
        created_at TIMESTAMP NOT NULL
    )
    """,
    """
    CREATE TABLE IF NOT EXISTS concept_drift_results (
        partition VARCHAR NOT NULL,
        reference_id VARCHAR NOT NULL,
        model_id VARCHAR,
        verdict VARCHAR NOT NULL,
        metric VARCHAR,
        reference_value DOUBLE,
        current_value DOUBLE,
        difference DOUBLE,
        ci_low DOUBLE,
        ci_high DOUBLE,
        degraded BOOLEAN,
        improved BOOLEAN,
        beyond_covariate BOOLEAN NOT NULL,
        covariate_severity DOUBLE,
        covariate_drift_small BOOLEAN,
        n_reference BIGINT,
        n_current BIGINT,
        n_bootstrap INTEGER,
        reason VARCHAR,
        created_at TIMESTAMP NOT NULL
    )
    """,
    """
    CREATE TABLE IF NOT EXISTS complaint_results (
        partition VARCHAR NOT NULL,
        day DATE NOT NULL,
        orders BIGINT NOT NULL,
        complaints BIGINT NOT NULL,
        baseline_days INTEGER,
        baseline_orders BIGINT,
        baseline_complaints BIGINT,
        rate DOUBLE,
        baseline_rate DOUBLE,
        rate_ratio DOUBLE,
        p_value DOUBLE,
        alert BOOLEAN NOT NULL,
        status VARCHAR NOT NULL,
        created_at TIMESTAMP NOT NULL
    )
    """,
)


def ensure_drift_tables(con: duckdb.DuckDBPyConnection) -> None:
    """Create the four drift tables if they do not exist (idempotent)."""
    for statement in _DDL:
        con.execute(statement)


def drift_report_id(partition: str, reference_id: str, model_id: str | None) -> str:
    """Deterministic report id, so manual and automatic runs of a partition write the same row."""
    key = f"{partition}|{reference_id}|{model_id or ''}"
    return hashlib.sha256(key.encode()).hexdigest()[:16]


@contextmanager
def _transaction(con: duckdb.DuckDBPyConnection) -> Iterator[None]:
    con.execute("BEGIN TRANSACTION")
    try:
        yield
    except BaseException:
        con.execute("ROLLBACK")
        raise
    con.execute("COMMIT")


@contextmanager
def _registered(con: duckdb.DuckDBPyConnection, frame: pd.DataFrame) -> Iterator[str]:
    """Expose ``frame`` as view ``tmp_df`` (registered outside the transaction, so an aborted
    transaction can still be rolled back before the view is dropped)."""
    con.register("tmp_df", frame)
    try:
        yield "tmp_df"
    finally:
        con.unregister("tmp_df")


def _insert_registered(con: duckdb.DuckDBPyConnection, table: str, view: str, columns: list[str]) -> None:
    """Insert the named columns of a registered frame (NaN becomes NULL)."""
    column_list = ", ".join(columns)
    con.execute(f"INSERT INTO {table} ({column_list}) SELECT {column_list} FROM {view}")


def _optional(value: float | None) -> float | None:
    """NaN (not computable) becomes NULL; infinities are kept."""
    return None if value is None or np.isnan(value) else float(value)


def _require_text(name: str, value: object) -> None:
    if not isinstance(value, str) or not value:
        raise ValueError(f"{name} must be a non-empty string, got {value!r}")


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)


def _feature_rows(report: DriftReport, report_id: str, partition: str, created_at: dt.datetime) -> pd.DataFrame:
    import pandas as pd
    rows = [
        {
            "report_id": report_id, "partition": partition, "feature": r.feature, "kind": r.kind, "test": r.test,
            "segment_column": r.segment_column, "segment_value": r.segment_value, "statistic": r.statistic,
            "p_value": r.p_value, "p_value_corrected": r.p_value_corrected, "effect_size": r.effect_size,
            "effect_size_name": r.effect_size_name, "effect_threshold": r.effect_threshold, "drifted": r.drifted,
            "n_reference": r.n_reference, "n_current": r.n_current, "created_at": created_at,
        }
        for r in report.all_results()
    ]
    threshold = report.config.unseen_share_threshold
    unseen_by_segment = [(GLOBAL_SEGMENT, GLOBAL_SEGMENT, report.unseen_share, report.n_current)]
    unseen_by_segment += [(s.column, s.value, s.unseen_share, s.n_current) for s in report.segments if not s.skipped]
    for column, value, shares, n_current in unseen_by_segment:
        for feature, share in shares.items():
            rows.append({
                "report_id": report_id, "partition": partition, "feature": feature, "kind": "categorical",
                "test": "unseen_share", "segment_column": column, "segment_value": value, "statistic": share,
                "p_value": None, "p_value_corrected": None, "effect_size": share, "effect_size_name": "unseen_share",
                "effect_threshold": threshold, "drifted": share >= threshold, "n_reference": None,
                "n_current": n_current, "created_at": created_at,
            })
    frame = pd.DataFrame(rows)
    for column in ("statistic", "p_value", "p_value_corrected", "effect_size", "effect_threshold"):
        frame[column] = frame[column].astype("float64")
    for column in ("n_reference", "n_current"):
        frame[column] = frame[column].astype("Int64")
    return frame


def write_drift_report(
    con: duckdb.DuckDBPyConnection,
    report: DriftReport,
    *,
    partition: str,
    reference_id: str,
    model_id: str | None,
    plot_path: str | None = None,
    created_at: dt.datetime | None = None,
) -> str:
    """Replace ``partition``'s rows in ``drift_reports`` and ``drift_feature_results``; return the report id."""
    _require_text("partition", partition)
    _require_text("reference_id", reference_id)
    ensure_drift_tables(con)
    created_at = created_at or _now()
    report_id = drift_report_id(partition, reference_id, model_id)
    summary = report.to_summary()
    multivariate = report.multivariate
    prediction = report.prediction_drift
    feature_rows = _feature_rows(report, report_id, partition, created_at)
    with _registered(con, feature_rows) as view, _transaction(con):
        for table in ("drift_reports", "drift_feature_results"):
            con.execute(f"DELETE FROM {table} WHERE partition = ?", [partition])
        con.execute(
            """
            INSERT INTO drift_reports (
                report_id, partition, reference_id, model_id, severity, severity_level, scope, scope_dimension,
                drifted_features, top_features, affected_segments, affected_traffic_share, skipped_segments, flags,
                max_unseen_share, multivariate_drift, multivariate_p_value, multivariate_sample_size,
                multivariate_seconds, prediction_drift, uncertainty_drift, n_reference, n_current, cost_seconds,
                plot_path, summary_json, config_json, created_at
            ) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
            """,
            [
                report_id, partition, reference_id, model_id, report.severity, report.severity_level, report.scope,
                report.scope_dimension, list(report.drifted_features), list(report.top_features),
                list(report.affected_segments), report.affected_traffic_share, list(report.skipped_segments),
                list(report.flags), summary["max_unseen_share"],
                None if multivariate is None else multivariate.drifted,
                None if multivariate is None else _optional(multivariate.p_value),
                None if multivariate is None else multivariate.n_current_sample,
                None if multivariate is None else multivariate.seconds,
                None if prediction is None else prediction.prediction.drifted,
                None if prediction is None else prediction.uncertainty.drifted,
                report.n_reference, report.n_current, report.cost_seconds, plot_path,
                json.dumps(summary, sort_keys=True), json.dumps(asdict(report.config), sort_keys=True), created_at,
            ],
        )
        _insert_registered(con, "drift_feature_results", view, list(feature_rows.columns))
    return report_id


def write_concept_drift_result(
    con: duckdb.DuckDBPyConnection,
    result: ConceptDriftResult,
    *,
    partition: str,
    reference_id: str,
    model_id: str | None,
    created_at: dt.datetime | None = None,
) -> None:
    """Replace ``partition``'s rows in ``concept_drift_results`` (one row per metric)."""
    import pandas as pd
    _require_text("partition", partition)
    _require_text("reference_id", reference_id)
    ensure_drift_tables(con)
    created_at = created_at or _now()
    common = {
        "partition": partition, "reference_id": reference_id, "model_id": model_id, "verdict": result.verdict,
        "beyond_covariate": result.beyond_covariate, "covariate_severity": result.covariate_severity,
        "covariate_drift_small": result.covariate_drift_small, "n_reference": result.n_reference,
        "n_current": result.n_current, "n_bootstrap": result.n_bootstrap, "reason": result.reason,
        "created_at": created_at,
    }
    rows = [
        {**common, "metric": m.metric, "reference_value": m.reference_value, "current_value": m.current_value,
         "difference": m.difference, "ci_low": m.ci_low, "ci_high": m.ci_high, "degraded": m.degraded,
         "improved": m.improved}
        for m in result.metrics
    ] or [{**common, "metric": None, "reference_value": None, "current_value": None, "difference": None,
           "ci_low": None, "ci_high": None, "degraded": None, "improved": None}]
    frame = pd.DataFrame(rows)
    for column in ("reference_value", "current_value", "difference", "ci_low", "ci_high", "covariate_severity"):
        frame[column] = frame[column].astype("float64")
    for column in ("degraded", "improved", "covariate_drift_small"):
        frame[column] = frame[column].astype("boolean")
    frame["metric"] = frame["metric"].astype("string")
    frame["model_id"] = frame["model_id"].astype("string")
    with _registered(con, frame) as view, _transaction(con):
        con.execute("DELETE FROM concept_drift_results WHERE partition = ?", [partition])
        _insert_registered(con, "concept_drift_results", view, list(frame.columns))


def write_complaint_result(
    con: duckdb.DuckDBPyConnection,
    result: ComplaintTestResult,
    *,
    partition: str,
    created_at: dt.datetime | None = None,
) -> None:
    """Replace ``partition``'s row in ``complaint_results``."""
    _require_text("partition", partition)
    ensure_drift_tables(con)
    created_at = created_at or _now()
    with _transaction(con):
        con.execute("DELETE FROM complaint_results WHERE partition = ?", [partition])
        con.execute(
            """
            INSERT INTO complaint_results (
                partition, day, orders, complaints, baseline_days, baseline_orders, baseline_complaints, rate,
                baseline_rate, rate_ratio, p_value, alert, status, created_at
            ) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
            """,
            [
                partition, result.day, result.orders, result.complaints, result.baseline_days, result.baseline_orders,
                result.baseline_complaints, _optional(result.rate), _optional(result.baseline_rate),
                _optional(result.rate_ratio), _optional(result.p_value), result.alert, result.status, created_at,
            ],
        )
