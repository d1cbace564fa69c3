"""Promotion gates: blocking checks on the candidate model (holdout, fairness, leakage, calibration)."""

from collections.abc import Iterator

import dagster as dg
from dagster_duckdb import DuckDBResource

from ct_assets.core.evaluation import GateSettings, evaluate_candidate
from ct_assets.defs.assets.training import candidate_model
from ct_assets.defs.resources import DUCKDB_POOL, CTSettings, CTStorage

GATE_CHECKS = {
    "holdout": "beats_production_on_holdout",
    "fairness": "no_group_regresses",
    "leakage": "no_label_leakage",
    "calibration": "calibration_not_worse",
}


@dg.multi_asset_check(
    specs=[dg.AssetCheckSpec(check_name, asset=candidate_model, blocking=True,
                             description=f"Promotion gate: {gate}")
           for gate, check_name in GATE_CHECKS.items()],
    pool=DUCKDB_POOL,
)
def candidate_gates(context: dg.AssetCheckExecutionContext, duckdb: DuckDBResource, storage: CTStorage,
                    settings: CTSettings) -> Iterator[dg.AssetCheckResult]:
    event = context.instance.get_latest_materialization_event(candidate_model.key)
    if event is None or event.asset_materialization is None:
        raise ValueError("candidate_model has never been materialized")
    model_id = event.asset_materialization.metadata["model_id"].value
    gate_settings = GateSettings(metric=settings.gate_metric, margin=settings.gate_margin,
                                 relative=settings.gate_relative)
    with duckdb.get_connection() as con:
        results = evaluate_candidate(con, storage.models_dir, str(model_id), gate_settings)
    for gate in results:
        yield dg.AssetCheckResult(
            check_name=GATE_CHECKS[gate.name],
            passed=gate.passed,
            severity=dg.AssetCheckSeverity.ERROR if gate.severity == "error" else dg.AssetCheckSeverity.WARN,
            description=gate.reason,
            metadata={"model_id": str(model_id), "metrics": dg.MetadataValue.json(gate.to_dict()["metrics"]),
                      "threshold": dg.MetadataValue.json(gate.to_dict()["threshold"])},
        )
