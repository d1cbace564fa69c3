"""Promotion gates: blocking checks on each candidate (holdout on the newest regime, the long-term
holdout set, fairness, leakage, calibration), plus a feedback-loop (selection bias) warning.

A failed gate rejects the candidate in the registry, raises an alert (the seed's "page the
on-call engineer instead of deploying") and, being blocking, stops `production_model`.
"""

from collections.abc import Iterator

import dagster as dg
from dagster_duckdb import DuckDBResource

from ct_assets.core.ops.alerts import raise_alert
from ct_assets.core.release.evaluation import evaluate_candidate
from ct_assets.core.release.lineup import blocking_failures
from ct_assets.defs.resources import DUCKDB_POOL, CTSettings, CTStorage
from ct_assets.defs.training.candidates import CANDIDATE_ASSETS

GATE_CHECKS = {
    "holdout": "holds_up_against_production_on_newest_holdout",
    "non_regression": "no_regression_outside_the_shift",
    "long_term_holdout": "no_regression_on_long_term_holdout",
    "fairness": "no_group_regresses",
    "leakage": "no_label_leakage",
    "calibration": "calibration_not_worse",
    "selection_bias": "labels_not_from_own_approvals",
}
# A feedback loop is a warning for a human, not a veto: the labels are real, only biased.
WARNING_GATES = {"selection_bias"}


def _gates_for(candidate: dg.AssetsDefinition) -> dg.AssetChecksDefinition:
    @dg.multi_asset_check(
        name=f"{candidate.key.to_python_identifier()}_gates",
        specs=[dg.AssetCheckSpec(check_name, asset=candidate, blocking=gate not in WARNING_GATES,
                                 description=f"Promotion gate: {gate}")
               for gate, check_name in GATE_CHECKS.items()],
        pool=DUCKDB_POOL,
    )
    def _gates(context: dg.AssetCheckExecutionContext, duckdb: DuckDBResource, storage: CTStorage,
               settings: CTSettings) -> Iterator[dg.AssetCheckResult]:
        event = context.instance.get_latest_materialization_event(candidate.key)
        if event is None or event.asset_materialization is None:
            raise ValueError(f"{candidate.key.to_user_string()} has never been materialized")
        model_id = str(event.asset_materialization.metadata["model_id"].value)
        with duckdb.get_connection() as con:
            results = evaluate_candidate(con, storage.models_dir, model_id, settings.gate_settings(),
                                         settings.policy())
            failed = blocking_failures(results)
            if failed:
                raise_alert(con, "gate_failed", "error", model_id,
                            f"candidate {model_id} not promoted: " + "; ".join(f"{g.name}: {g.reason}" for g in failed),
                            {"failed_gates": [g.name for g in failed]}, settings.notifier())
        for gate in results:
            as_dict = gate.to_dict()
            yield dg.AssetCheckResult(
                asset_key=candidate.key,
                check_name=GATE_CHECKS[gate.name],
                passed=gate.passed,
                severity=dg.AssetCheckSeverity.ERROR if gate.severity == "error" else dg.AssetCheckSeverity.WARN,
                description=gate.reason,
                metadata={"model_id": model_id, "metrics": dg.MetadataValue.json(as_dict["metrics"]),
                          "threshold": dg.MetadataValue.json(as_dict["threshold"])},
            )

    return _gates


CANDIDATE_GATES = [_gates_for(candidate) for candidate in CANDIDATE_ASSETS]
