"""Online mode: the serving model learns in place from each day's newly arrived labels."""

import dagster as dg
from dagster_duckdb import DuckDBResource

from ct_assets.core.training.online import apply_online_update
from ct_assets.defs.data.features import features
from ct_assets.defs.data.ingest import labels
from ct_assets.defs.partitions import days_partitions
from ct_assets.defs.release.production import production_model
from ct_assets.defs.resources import DUCKDB_POOL, CTSettings, CTStorage


@dg.asset(
    partitions_def=days_partitions,
    deps=[features, labels, production_model],
    group_name="training",
    kinds={"pytorch", "safetensors", "duckdb"},
    owners=["team:ml-platform"],
    pool=DUCKDB_POOL,
    description="Online mode (CTSettings.online_enabled, off by default; `CT_ONLINE_MODE=1 make run`): a "
                "few bounded gradient steps of the serving model on the labels that arrived this day, "
                "registered as a new version (training_path=online) and served at once. Every "
                "`online_gate_every_updates` updates the chain is gated against its anchor (non-regression, "
                "fairness, calibration on recent holdout rows); on failure the anchor is restored and an "
                "alert raised. The landing sensor runs it with each day when online mode is on.",
)
def online_model(context: dg.AssetExecutionContext, duckdb: DuckDBResource, storage: CTStorage,
                 settings: CTSettings) -> dg.MaterializeResult:
    online = settings.online_config()
    if not online.enabled:
        raise dg.Failure("online mode is off (CTSettings.online_enabled=False); set CT_ONLINE_MODE=1 to use it")
    with duckdb.get_connection() as con:
        outcome = apply_online_update(con, storage.models_dir, context.partition_key, settings.training_config(),
                                      online, settings.gate_settings(), settings.notifier())
    return dg.MaterializeResult(metadata={
        "status": outcome.status,
        "model_id": outcome.model_id or "",
        "message": outcome.message,
        "updates_since_anchor": outcome.updates_since_anchor,
        "anchor_model_id": outcome.anchor_model_id or "",
        "gates": dg.MetadataValue.json([g.to_dict() for g in outcome.gate_results]),
    })
