"""Training assets: the two candidate training paths (retrain from scratch, fine-tune the serving model)."""

from datetime import date

import dagster as dg
from dagster_duckdb import DuckDBResource

from ct_assets.core.decision.records import set_decision_outcome
from ct_assets.core.training.candidates import CandidateRequest, build_candidate
from ct_assets.defs.data.features import features
from ct_assets.defs.data.ingest import labels
from ct_assets.defs.decision.assets import training_decision
from ct_assets.defs.resources import DUCKDB_POOL, CTSettings, CTStorage
from ct_assets.defs.tags import DECISION_TAG, REASON_TAG, TRIGGER_TAG, WINDOW_END_TAG

OWNERS = ["team:ml-platform"]


def latest_feature_day(con) -> date:
    day = con.execute("SELECT max(day) FROM features").fetchall()[0][0]
    if day is None:
        raise ValueError("no features yet: ingest and build features for some days first")
    return day


def _candidate_asset(name: str, training_path: str, description: str) -> dg.AssetsDefinition:
    """One training path as an asset: same window logic, registry row and metadata for both paths."""

    @dg.asset(
        name=name,
        deps=[features, labels, training_decision],
        group_name="training",
        kinds={"pytorch", "safetensors", "duckdb"},
        owners=OWNERS,
        pool=DUCKDB_POOL,
        description=description,
    )
    def _candidate(context: dg.AssetExecutionContext, duckdb: DuckDBResource, storage: CTStorage,
                   settings: CTSettings) -> dg.MaterializeResult:
        tags = context.run.tags
        window_days = settings.training_window_days if training_path == "retrain" else settings.fine_tune_window_days
        with duckdb.get_connection() as con:
            window_end = (date.fromisoformat(tags[WINDOW_END_TAG]) if WINDOW_END_TAG in tags
                          else latest_feature_day(con))
            request = CandidateRequest(
                training_path=training_path, window_end=window_end, window_days=window_days,
                trigger=tags.get(TRIGGER_TAG, "manual"),
                trigger_reason=tags.get(REASON_TAG, f"materialized by hand (run {context.run_id[:8]})"),
                min_rows=settings.min_training_rows, decision_id=tags.get(DECISION_TAG),
                policy_version=settings.policy().policy_version)
            record = build_candidate(con, storage.models_dir, request, settings.training_config())
            if request.decision_id:
                set_decision_outcome(con, request.decision_id, f"{training_path}: candidate {record.model_id}")
        return dg.MaterializeResult(metadata={
            "model_id": record.model_id,
            "training_path": record.training_path,
            "parent_model_id": record.parent_model_id or "",
            "decision_id": record.decision_id or "",
            "trigger": record.trigger or "",
            "trigger_reason": record.trigger_reason or "",
            "data_window": f"{record.data_window_start}..{record.data_window_end}",
            "train_rows": record.n_train_rows or 0,
            "wall_seconds": round(record.wall_s or 0.0, 3),
            "cpu_seconds": round(record.cpu_s or 0.0, 3),
            "energy_kwh": record.energy_kwh or 0.0,
            "train_gflops": record.train_gflops or 0.0,
            "co2_kg": record.co2_kg or 0.0,
            "manifest": dg.MetadataValue.path(f"{record.artifact_path}/manifest.json"),
        })

    return _candidate


retrained_candidate = _candidate_asset(
    "retrained_candidate", "retrain",
    "A candidate trained from scratch (torch MLP, seeded; GPU when present) on the labelled rows of the "
    "last `training_window_days` days minus the fixed holdout. Staged in `model_registry` with its "
    "safetensors artifact and manifest under data/models/<model_id>/; only promotion makes it serve.")
finetuned_candidate = _candidate_asset(
    "finetuned_candidate", "fine_tune",
    "A candidate warm-started from the production model's weights and trained for a bounded number of "
    "steps at a lower learning rate on the last `fine_tune_window_days` days plus a replay sample of "
    "older rows (against forgetting). Staged like a retrained candidate, with the parent model recorded.")
CANDIDATE_ASSETS = (retrained_candidate, finetuned_candidate)
