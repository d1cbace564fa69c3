"""Drive the real asset graph the way the daemon would: sensors decide, `materialize` executes."""

from pathlib import Path

import dagster as dg

from ct_assets.core.simulator import SimulatorConfig, write_day
from ct_assets.defs.assets.deployment import production_model
from ct_assets.defs.assets.features import features
from ct_assets.defs.assets.ingest import complaints, labels, raw_events
from ct_assets.defs.assets.monitoring import drift_report
from ct_assets.defs.assets.training import candidate_model
from ct_assets.defs.checks import DATA_QUALITY_CHECKS
from ct_assets.defs.gate_checks import candidate_gates
from ct_assets.defs.sensors import landing_sensor, training_trigger_sensor

DAY_ASSETS = [raw_events, labels, complaints, features, drift_report, *DATA_QUALITY_CHECKS]
TRAINING_ASSETS = [candidate_model, production_model, candidate_gates, features, labels]


class Pipeline:
    """A data directory, a simulator config and a Dagster instance, stepped one day at a time."""

    def __init__(self, instance: dg.DagsterInstance, resources: dict[str, object], data_dir: Path,
                 config: SimulatorConfig) -> None:
        self.instance, self.resources, self.data_dir, self.config = instance, resources, data_dir, config
        self.next_day = 0
        self.landing_cursor: str | None = None
        self.trigger_cursor: str | None = None

    def land(self, days: int) -> None:
        for _ in range(days):
            write_day(self.data_dir / "landing", self.data_dir / "simulator_state", self.config, self.next_day)
            self.next_day += 1

    def ingest_landed(self) -> list[str]:
        """Evaluate the landing sensor and run what it requests (plus eager downstream assets)."""
        context = dg.build_sensor_context(instance=self.instance, resources=self.resources,
                                          cursor=self.landing_cursor)
        result = landing_sensor(context)
        if isinstance(result, dg.SkipReason):
            return []
        self.landing_cursor = result.cursor
        for request in result.dynamic_partitions_requests:
            self.instance.add_dynamic_partitions("days", list(request.partition_keys))
        days = [r.partition_key for r in result.run_requests]
        for day in days:
            dg.materialize(DAY_ASSETS, partition_key=day, instance=self.instance, resources=self.resources,
                           tags={"ct/trigger": "landing"}, raise_on_error=False)
        return days

    def evaluate_trigger(self) -> dg.SensorResult:
        context = dg.build_sensor_context(instance=self.instance, resources=self.resources,
                                          cursor=self.trigger_cursor)
        result = training_trigger_sensor(context)
        self.trigger_cursor = result.cursor
        return result

    def run_training(self, tags: dict[str, str]) -> dg.ExecuteInProcessResult:
        return dg.materialize(TRAINING_ASSETS, selection=[candidate_model, production_model],
                              instance=self.instance, resources=self.resources, tags=tags, raise_on_error=False)
