"""Training asset: a candidate model trained on the recent labelled window, staged in the registry."""

from datetime import date

import dagster as dg
from dagster_duckdb import DuckDBResource

from ct_assets.core.candidates import CandidateRequest, build_candidate
from ct_assets.core.training import TrainingConfig
from ct_assets.defs.assets.features import features
from ct_assets.defs.assets.ingest import labels
from ct_assets.defs.resources import DUCKDB_POOL, CTSettings, CTStorage

# Run tags a sensor sets to say why it asked for a candidate; a manual run has none.
TRIGGER_TAG = "ct/trigger"
REASON_TAG = "ct/reason"
WINDOW_END_TAG = "ct/window_end"
DRIFT_REPORT_TAG = "ct/drift_report_id"


def latest_feature_day(con) -> date:
    day = con.execute("SELECT max(day) FROM features").fetchall()[0][0]
    if day is None:
        raise ValueError("no features yet: ingest and build features for some days first")
    return day


@dg.asset(
    deps=[features, labels],
    group_name="training",
    kinds={"pytorch", "safetensors", "duckdb"},
    owners=["team:ml-platform"],
    pool=DUCKDB_POOL,
    description="A candidate fraud model (torch MLP) trained from scratch on the labelled rows of the "
                "last `training_window_days` days, minus the fixed holdout. Weights are stored as "
                "safetensors with a JSON manifest under data/models/<model_id>/ and registered as "
                "`staging` in `model_registry`; only promotion makes it serve.",
)
def candidate_model(context: dg.AssetExecutionContext, duckdb: DuckDBResource, storage: CTStorage,
                    settings: CTSettings) -> dg.MaterializeResult:
    tags = context.run.tags
    config = TrainingConfig(epochs=settings.training_epochs, seed=settings.training_seed)
    with duckdb.get_connection() as con:
        window_end = date.fromisoformat(tags[WINDOW_END_TAG]) if WINDOW_END_TAG in tags else latest_feature_day(con)
        request = CandidateRequest(
            training_path="retrain", window_end=window_end, window_days=settings.training_window_days,
            trigger=tags.get(TRIGGER_TAG, "manual"),
            trigger_reason=tags.get(REASON_TAG, f"materialized by hand (run {context.run_id[:8]})"),
            min_rows=settings.min_training_rows, drift_report_id=tags.get(DRIFT_REPORT_TAG))
        record = build_candidate(con, storage.models_dir, request, config)
    return dg.MaterializeResult(metadata={
        "model_id": record.model_id,
        "training_path": record.training_path,
        "trigger": record.trigger or "",
        "trigger_reason": record.trigger_reason or "",
        "data_window": f"{record.data_window_start}..{record.data_window_end}",
        "train_rows": record.n_train_rows or 0,
        "wall_seconds": round(record.wall_s or 0.0, 2),
        "energy_kwh": record.energy_kwh or 0.0,
        "manifest": dg.MetadataValue.path(f"{record.artifact_path}/manifest.json"),
    })
