"""Deployment asset: the production model pointer, moved only to a candidate that passed its gates."""

import dagster as dg
from dagster_duckdb import DuckDBResource

from ct_assets.core.evaluation import promote_ready_candidate
from ct_assets.core.registry import ensure_registry_tables, get_production
from ct_assets.defs.assets.training import TRIGGER_TAG, candidate_model
from ct_assets.defs.automation import eager_after_checks
from ct_assets.defs.resources import DUCKDB_POOL


@dg.asset(
    deps=[candidate_model],
    group_name="deployment",
    kinds={"duckdb"},
    owners=["team:ml-platform"],
    pool=DUCKDB_POOL,
    # Runs after a candidate materializes *and* its blocking gate checks passed.
    automation_condition=eager_after_checks(),
    description="The serving model: an atomic pointer swap in `model_registry` (logged in `deployments`) "
                "to the newest staged candidate whose quality gates all passed. The first model "
                "bootstraps production.",
)
def production_model(context: dg.AssetExecutionContext, duckdb: DuckDBResource) -> dg.MaterializeResult:
    actor = f"dagster:{context.run.tags.get(TRIGGER_TAG, 'manual')}:{context.run_id[:8]}"
    with duckdb.get_connection() as con:
        ensure_registry_tables(con)
        deployment = promote_ready_candidate(con, actor=actor)
        production = get_production(con)
    if production is None:
        raise ValueError("no production model: no staged candidate has passed its gates yet")
    return dg.MaterializeResult(metadata={
        "model_id": production.model_id,
        "promoted_now": deployment is not None,
        "reason": deployment.reason if deployment else "already serving; no newer candidate passed its gates",
        "data_window_end": str(production.data_window_end),
        "training_path": production.training_path,
        "manifest": dg.MetadataValue.path(f"{production.artifact_path}/manifest.json"),
    })
