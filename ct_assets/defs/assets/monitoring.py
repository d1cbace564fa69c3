"""Monitoring asset: the day's drift report against what the production model learned."""

import base64

import dagster as dg
from dagster_duckdb import DuckDBResource

from ct_assets.core.drift import DriftConfig
from ct_assets.core.monitoring import monitor_day
from ct_assets.defs.assets.features import features
from ct_assets.defs.automation import eager_after_checks
from ct_assets.defs.partitions import days_partitions
from ct_assets.defs.resources import DUCKDB_POOL, CTSettings, CTStorage


@dg.asset(
    partitions_def=days_partitions,
    deps=[features],
    group_name="monitoring",
    kinds={"duckdb", "scipy", "pytorch"},
    owners=["team:ml-platform"],
    pool=DUCKDB_POOL,
    automation_condition=eager_after_checks(),
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
                             DriftConfig(), bootstrap_days=settings.reference_days)
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
