"""Assemble the Dagster Definitions from the shell modules."""

from collections.abc import Mapping

import dagster as dg

from ct_assets.defs.automation import automation_sensor
from ct_assets.defs.backtest.assets import backtest_result, backtest_tables
from ct_assets.defs.data.features import features
from ct_assets.defs.data.ingest import complaints, labels, raw_events
from ct_assets.defs.data.landing_sensor import landing_sensor
from ct_assets.defs.data.quality_checks import DATA_QUALITY_CHECKS
from ct_assets.defs.decision.assets import training_decision
from ct_assets.defs.decision.calibration import policy_calibration
from ct_assets.defs.decision.request_sensor import decision_request_sensor
from ct_assets.defs.decision.triggers import TRIGGER_SENSORS, daily_policy_schedule
from ct_assets.defs.monitoring.assets import (
    complaint_report,
    concept_drift,
    drift_report,
)
from ct_assets.defs.ops.analytics import analyst_snapshot_asset
from ct_assets.defs.release.gate_checks import CANDIDATE_GATES
from ct_assets.defs.release.production import (
    model_approval,
    production_model,
    rollout_monitor,
)
from ct_assets.defs.release.rollback_sensor import rollback_sensor
from ct_assets.defs.resources import default_resources
from ct_assets.defs.training.candidates import CANDIDATE_ASSETS
from ct_assets.defs.training.online import online_model
from ct_assets.defs.training.path_sensor import decision_sensor
from ct_assets.defs.training.periodic_retrain import periodic_retrain_schedule


def build_definitions(resources: Mapping[str, object] | None = None) -> dg.Definitions:
    """All assets, checks, sensors and schedules; ``resources`` overrides the environment defaults."""
    table_assets = [raw_events, labels, complaints, features, drift_report, concept_drift, complaint_report,
                    training_decision, *CANDIDATE_ASSETS, production_model, model_approval, rollout_monitor,
                    online_model, backtest_tables]
    return dg.Definitions(
        assets=[*table_assets, backtest_result, policy_calibration, analyst_snapshot_asset(table_assets)],
        asset_checks=[*DATA_QUALITY_CHECKS, *CANDIDATE_GATES],
        sensors=[landing_sensor, *TRIGGER_SENSORS, decision_request_sensor, decision_sensor, rollback_sensor, automation_sensor()],
        schedules=[daily_policy_schedule, periodic_retrain_schedule],
        resources={**default_resources(), **(resources or {})},
        # One process per run: DuckDB steps take turns anyway, and a subprocess per step would
        # re-import the code location for every step.
        executor=dg.in_process_executor,
    )
