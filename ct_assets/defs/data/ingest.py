"""Ingest assets: one landed day's events, labels and complaints into the DuckDB warehouse."""


from datetime import timedelta
from functools import partial

import dagster as dg
from dagster_duckdb import DuckDBResource

from ct_assets.core.data.ingest import (
    IngestReport,
    ingest_complaints,
    ingest_events,
    ingest_labels,
    label_coverage,
)
from ct_assets.defs.partitions import days_partitions
from ct_assets.defs.resources import DUCKDB_POOL, CTStorage

OWNERS = ["team:data-platform"]
# A landed day's file into its warehouse table: one partition per day, one warehouse writer at a time.
ingest_asset = partial(dg.asset, partitions_def=days_partitions, group_name="ingest", kinds={"duckdb", "parquet"},
                       owners=OWNERS, pool=DUCKDB_POOL)


def _result(report: IngestReport, con, preview_sql: str) -> dg.MaterializeResult:
    preview = con.execute(preview_sql, [report.day]).fetchdf()
    return dg.MaterializeResult(metadata={
        **report.to_metadata(),
        "dagster/row_count": report.rows_valid,
        "preview": dg.MetadataValue.md(preview.to_markdown(index=False)),
    })


@ingest_asset(
    # The simulator lands a day every minute by default: stale after 10 minutes without one.
    freshness_policy=dg.FreshnessPolicy.time_window(fail_window=timedelta(minutes=10),
                                                    warn_window=timedelta(minutes=5)),
    description="Orders of one landed day (events.parquet), validated with pandera. Bad rows go to "
                "the `quarantine` table with reasons, unreadable files to data/quarantine/. Re-running a "
                "day replaces its rows in one transaction.",
)
def raw_events(context: dg.AssetExecutionContext, duckdb: DuckDBResource,
               storage: CTStorage) -> dg.MaterializeResult:
    with duckdb.get_connection() as con:
        report = ingest_events(con, storage.landing_dir, storage.quarantine_dir, context.partition_key)
        return _result(report, con, "SELECT * FROM raw_events WHERE day = ? ORDER BY event_id LIMIT 5")


@ingest_asset(
    deps=[raw_events],
    description="Labels (fraud chargebacks) that arrived on this day for earlier orders, joined to "
                "`raw_events` by id. Unknown ids and repeat deliveries are quarantined. Metadata shows the "
                "label coverage of the last 7 event days.",
)
def labels(context: dg.AssetExecutionContext, duckdb: DuckDBResource, storage: CTStorage) -> dg.MaterializeResult:
    with duckdb.get_connection() as con:
        report = ingest_labels(con, storage.landing_dir, storage.quarantine_dir, context.partition_key)
        result = _result(report, con, "SELECT * FROM labels WHERE arrival_day = ? ORDER BY event_id LIMIT 5")
        total = con.execute("SELECT count(*) FROM labels").fetchall()[0][0]
        coverage = label_coverage(con, days=7)
    return dg.MaterializeResult(metadata={
        **result.metadata,
        "labelled_rows_total": int(total),
        "label_coverage_by_event_day": dg.MetadataValue.md(coverage.to_markdown(index=False)),
    })


@ingest_asset(
    description="The day's customer complaint count and order count (complaints.parquet).",
)
def complaints(context: dg.AssetExecutionContext, duckdb: DuckDBResource,
               storage: CTStorage) -> dg.MaterializeResult:
    with duckdb.get_connection() as con:
        report = ingest_complaints(con, storage.landing_dir, storage.quarantine_dir, context.partition_key)
        return _result(report, con, "SELECT * FROM complaints WHERE day = ?")
