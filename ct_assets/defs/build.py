"""Assemble the Dagster Definitions from the shell modules."""


from collections.abc import Mapping

import dagster as dg

from ct_assets.defs.assets.analytics import analyst_snapshot_asset
from ct_assets.defs.assets.deployment import production_model
from ct_assets.defs.assets.features import features
from ct_assets.defs.assets.ingest import complaints, labels, raw_events
from ct_assets.defs.assets.monitoring import drift_report
from ct_assets.defs.assets.training import candidate_model
from ct_assets.defs.automation import automation_sensor
from ct_assets.defs.checks import DATA_QUALITY_CHECKS
from ct_assets.defs.gate_checks import candidate_gates
from ct_assets.defs.resources import default_resources
from ct_assets.defs.sensors import landing_sensor, training_trigger_sensor


def build_definitions(resources: Mapping[str, object] | None = None) -> dg.Definitions:
    """All assets, checks and sensors; ``resources`` overrides the environment-based defaults."""
    table_assets = [raw_events, labels, complaints, features, drift_report, candidate_model, production_model]
    return dg.Definitions(
        assets=[*table_assets, analyst_snapshot_asset(table_assets)],
        asset_checks=[*DATA_QUALITY_CHECKS, candidate_gates],
        sensors=[landing_sensor, training_trigger_sensor, automation_sensor()],
        resources={**default_resources(), **(resources or {})},
        # One process per run: DuckDB steps take turns anyway, and a subprocess per step would
        # re-import the code location for every step.
        executor=dg.in_process_executor,
    )
