"""Monitoring assets: the day's data drift, the serving model's concept drift, and complaints."""

import base64
from functools import partial

import dagster as dg
from dagster_duckdb import DuckDBResource

from ct_assets.core.monitoring.complaints import ComplaintConfig
from ct_assets.core.monitoring.concept_drift import ConceptDriftConfig
from ct_assets.core.monitoring.drift.types import DriftConfig
from ct_assets.core.monitoring.reference import (
    complaints_for_day,
    concept_drift_for_day,
    monitor_day,
)
from ct_assets.defs.automation import eager_after_checks
from ct_assets.defs.data.features import features
from ct_assets.defs.data.ingest import complaints, labels
from ct_assets.defs.partitions import days_partitions
from ct_assets.defs.resources import DUCKDB_POOL, CTSettings, CTStorage

# A day's monitoring: one partition per day, run once its inputs' blocking checks pass.
monitoring_asset = partial(dg.asset, partitions_def=days_partitions, group_name="monitoring",
                           owners=["team:ml-platform"], pool=DUCKDB_POOL, automation_condition=eager_after_checks())


@monitoring_asset(
    deps=[features],
    kinds={"duckdb", "scipy", "pytorch"},
    description="Data drift of the day's features vs the reference window (the production model's "
                "training window; the first days before any model): KS / chi-squared with FDR "
                "correction and effect sizes, unseen categories, a bounded MMD test, prediction drift, "
                "per-segment localisation (scope none/local/global) and a severity score. Rows in "
                "`drift_reports` and `drift_feature_results`; a PNG under data/reports/.",
)
def drift_report(context: dg.AssetExecutionContext, duckdb: DuckDBResource, storage: CTStorage,
                 settings: CTSettings) -> dg.MaterializeResult:
    with duckdb.get_connection() as con:
        result = monitor_day(con, storage.models_dir, storage.reports_dir, context.partition_key,
                             DriftConfig(multivariate=settings.drift_multivariate),
                             bootstrap_days=settings.reference_days)
    summary = result.report.to_summary()
    return dg.MaterializeResult(metadata={
        "report_id": result.report_id,
        "reference_id": result.reference.reference_id,
        "model_id": result.reference.model_id or "",
        "severity": summary["severity"],
        "severity_level": summary["severity_level"],
        "scope": summary["scope"],
        "top_features": summary["top_features"],
        "affected_segments": summary["affected_segments"],
        "drifted_features": summary["drifted_features"],
        "summary": dg.MetadataValue.json(summary),
        "plot_path": dg.MetadataValue.path(str(result.plot_path)),
        "plot": dg.MetadataValue.md(
            f"![drift report](data:image/png;base64,{base64.b64encode(result.plot_path.read_bytes()).decode()})"),
    })


@monitoring_asset(
    deps=[features, labels, drift_report],
    kinds={"duckdb", "numpy"},
    description="Concept drift of the serving model: its AUC / log-loss / error rate on labels that "
                "arrived in the last days vs on its own holdout, with bootstrap confidence intervals, and "
                "whether the change goes beyond covariate drift (P(y|X) moved, not only P(X)). Rows in "
                "`concept_drift_results`.",
)
def concept_drift(context: dg.AssetExecutionContext, duckdb: DuckDBResource,
                  storage: CTStorage) -> dg.MaterializeResult:
    with duckdb.get_connection() as con:
        # Three metrics are tested per day: 99 % intervals keep stable days from reading as degraded.
        outcome = concept_drift_for_day(con, storage.models_dir, context.partition_key,
                                        ConceptDriftConfig(confidence=0.99))
    summary = outcome.result.to_summary() if outcome.result else {}
    return dg.MaterializeResult(metadata={
        "verdict": summary.get("verdict", "not_evaluated"),
        "concept_drift": bool(summary.get("concept_drift", False)),
        "beyond_covariate": bool(summary.get("beyond_covariate", False)),
        "model_id": (outcome.reference.model_id if outcome.reference else None) or "",
        "note": outcome.note,
        "summary": dg.MetadataValue.json(summary),
    })


@monitoring_asset(
    deps=[complaints],
    kinds={"duckdb", "scipy"},
    description="The day's complaint rate against the preceding baseline days (exact Poisson rate "
                "test with orders as exposure): an alert when complaints rise. Rows in `complaint_results`.",
)
def complaint_report(context: dg.AssetExecutionContext, duckdb: DuckDBResource) -> dg.MaterializeResult:
    with duckdb.get_connection() as con:
        # Pooling three days: one day of a few thousand orders is too few to see a 1.3x rise.
        result = complaints_for_day(con, context.partition_key, ComplaintConfig(current_days=3))
    summary = result.to_summary()
    return dg.MaterializeResult(metadata={
        "alert": result.alert, "rate_ratio": summary["rate_ratio"], "p_value": summary["p_value"],
        "status": result.status, "complaints": result.complaints, "orders": result.orders,
    })
