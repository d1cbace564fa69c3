"""Analyst snapshot: a read-only copy of the analyst tables, published after the pipeline writes."""


import dagster as dg
from dagster_duckdb import DuckDBResource

from ct_assets.core.ops.snapshots import ANALYST_TABLES, ensure_analyst_tables, publish_snapshot
from ct_assets.defs.resources import DUCKDB_POOL, CTStorage


def analyst_snapshot_asset(upstream: list[dg.AssetsDefinition]) -> dg.AssetsDefinition:
    """The snapshot asset, downstream of every asset that writes an analyst table."""

    @dg.asset(
        name="analyst_snapshot",
        deps=upstream,
        group_name="analytics",
        kinds={"duckdb"},
        owners=["team:analytics"],
        pool=DUCKDB_POOL,
        # Re-publish whenever an upstream table changed; one publication at a time.
        automation_condition=(
            dg.AutomationCondition.any_deps_updated().since_last_handled() & ~dg.AutomationCondition.in_progress()
        ),
        description="data/snapshots/latest.duckdb: a consistent copy of the analyst tables, replaced "
                    "atomically. Open it read-only: `duckdb -readonly data/snapshots/latest.duckdb`.",
    )
    def analyst_snapshot(duckdb: DuckDBResource, storage: CTStorage) -> dg.MaterializeResult:
        with duckdb.get_connection() as con:
            ensure_analyst_tables(con)
            info = publish_snapshot(con, storage.snapshots_dir, ANALYST_TABLES)
        return dg.MaterializeResult(metadata={
            "path": dg.MetadataValue.path(str(info.path)),
            "published_at": info.published_at,
            "tables": dg.MetadataValue.json(info.tables),
        })

    return analyst_snapshot
