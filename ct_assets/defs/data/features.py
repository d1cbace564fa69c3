"""Feature engineering asset: DuckDB SQL over raw_events, one partition per day."""


import dagster as dg
from dagster_duckdb import DuckDBResource

from ct_assets.core.data.features import build_features
from ct_assets.defs.automation import eager_after_checks
from ct_assets.defs.data.ingest import raw_events
from ct_assets.defs.partitions import days_partitions
from ct_assets.defs.resources import DUCKDB_POOL


@dg.asset(
    partitions_def=days_partitions,
    deps=[raw_events],
    group_name="features",
    kinds={"duckdb", "sql"},
    owners=["team:ml-platform"],
    pool=DUCKDB_POOL,
    automation_condition=eager_after_checks(),
    description="Model features per order: log price, discount, account age, sensor readings, time of "
                "day, and price relative to the region's 7-day average. Categorical inputs stay as text; "
                "`protected_group` is carried for fairness evaluation, never as a model input.",
)
def features(context: dg.AssetExecutionContext, duckdb: DuckDBResource) -> dg.MaterializeResult:
    with duckdb.get_connection() as con:
        rows = build_features(con, context.partition_key)
        preview = con.execute("SELECT * FROM features WHERE day = ? ORDER BY event_id LIMIT 5",
                              [context.partition_key]).fetchdf()
    return dg.MaterializeResult(metadata={
        "dagster/row_count": rows,
        "preview": dg.MetadataValue.md(preview.to_markdown(index=False)),
    })
