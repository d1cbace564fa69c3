"""Drive the real asset graph the way the daemon would: sensors decide, `materialize` executes."""

from pathlib import Path

import dagster as dg
import duckdb

from ct_assets.core.data.layout import DataLayout
from ct_assets.defs.build import build_definitions
from ct_assets.defs.data.features import features
from ct_assets.defs.data.ingest import labels
from ct_assets.defs.data.landing_sensor import DAY_ASSETS, landing_sensor
from ct_assets.defs.data.quality_checks import DATA_QUALITY_CHECKS
from ct_assets.defs.decision.assets import training_decision
from ct_assets.defs.decision.request_sensor import decision_request_sensor
from ct_assets.defs.decision.triggers import TRIGGER_SENSORS, daily_policy_schedule
from ct_assets.defs.release.gate_checks import CANDIDATE_GATES
from ct_assets.defs.release.production import production_model
from ct_assets.defs.release.rollback_sensor import rollback_sensor
from ct_assets.defs.training.candidates import CANDIDATE_ASSETS
from ct_assets.defs.training.online import online_model
from ct_assets.simulation.config import SimulatorConfig
from ct_assets.simulation.landing import write_day


def query(data_dir: Path, sql: str) -> list[tuple]:
    """Rows of ``sql`` on the warehouse of ``data_dir``, opened read-only."""
    with duckdb.connect(str(DataLayout.from_root(data_dir).warehouse_path), read_only=True) as con:
        return con.execute(sql).fetchall()

from ct_assets.defs.training.path_sensor import decision_sensor

# Everything a day's run may touch: its selection comes from the landing sensor's request.
DAY_RUN_ASSETS = [*DAY_ASSETS, online_model, production_model, *DATA_QUALITY_CHECKS]
DECISION_ASSETS = [training_decision, *DAY_ASSETS]
TRAINING_ASSETS = [*CANDIDATE_ASSETS, production_model, *CANDIDATE_GATES, features, labels, training_decision]


class Pipeline:
    """A data directory, a simulator config and a Dagster instance, stepped one day at a time."""

    def __init__(self, instance: dg.DagsterInstance, resources: dict[str, object], data_dir: Path,
                 config: SimulatorConfig) -> None:
        self.instance, self.resources, self.data_dir, self.config = instance, resources, data_dir, config
        self.next_day = 0
        self.cursors: dict[str, str | None] = {}

    def land(self, days: int) -> None:
        layout = DataLayout.from_root(self.data_dir)
        for _ in range(days):
            write_day(layout.landing_dir, layout.simulator_state_dir, self.config, self.next_day)
            self.next_day += 1

    def _tick(self, sensor: dg.SensorDefinition) -> dg.SensorResult | dg.SkipReason:
        context = dg.build_sensor_context(instance=self.instance, resources=self.resources,
                                          cursor=self.cursors.get(sensor.name))
        result = sensor(context)
        if isinstance(result, dg.SensorResult):
            self.cursors[sensor.name] = result.cursor
            for event in result.asset_events:  # as the sensor daemon records them
                self.instance.report_runless_asset_event(event)
        return result

    def ingest_landed(self) -> list[str]:
        """Evaluate the landing sensor, run each requested day through monitoring, then the triggers."""
        result = self._tick(landing_sensor)
        if isinstance(result, dg.SkipReason):
            return []
        for request in result.dynamic_partitions_requests:
            self.instance.add_dynamic_partitions("days", list(request.partition_keys))
        for request in result.run_requests:
            dg.materialize(DAY_RUN_ASSETS, selection=list(request.asset_selection),
                           partition_key=request.partition_key, instance=self.instance,
                           resources=self.resources, tags=request.tags, raise_on_error=False)
        self.triggers()
        return [r.partition_key for r in result.run_requests]

    def triggers(self) -> list[dg.RunRequest]:
        """Tick every trigger sensor once, then the decision request sensor, and run the decisions asked for."""
        for sensor in TRIGGER_SENSORS:
            self._tick(sensor)
        return self.requested_decisions()

    def requested_decisions(self) -> list[dg.RunRequest]:
        """Tick the decision request sensor on the triggers' asks and run the decisions it requests."""
        requests = list(self._tick(decision_request_sensor).run_requests or [])
        for request in requests:
            self.run_decision(request)
        return requests

    def run_decision(self, request: dg.RunRequest) -> dg.ExecuteInProcessResult:
        return dg.materialize(DECISION_ASSETS, selection=[training_decision], partition_key=request.partition_key,
                              instance=self.instance, resources=self.resources, tags=request.tags,
                              raise_on_error=False)

    def scheduled_decision(self) -> dg.RunRequest | dg.SkipReason:
        """Evaluate the daily policy schedule (as its cron tick would) and run the decision it asks for."""
        context = dg.build_schedule_context(instance=self.instance,
                                            repository_def=build_definitions(self.resources).get_repository_def())
        daily_policy_schedule.evaluate_tick(context)
        requests = self.requested_decisions()
        return requests[0] if requests else dg.SkipReason("nothing scheduled")

    def decisions(self) -> list[dg.RunRequest]:
        return list(self._tick(decision_sensor).run_requests or [])

    def rollbacks(self) -> list[dg.RunRequest]:
        return list(self._tick(rollback_sensor).run_requests or [])

    def run(self, request: dg.RunRequest) -> dg.ExecuteInProcessResult:
        """Execute a sensor's run request as the daemon would (its selection, with checks, its tags)."""
        return dg.materialize(TRAINING_ASSETS, selection=list(request.asset_selection), instance=self.instance,
                              resources=self.resources, tags=request.tags, raise_on_error=False)

    def step(self, days: int = 1) -> list[dg.RunRequest]:
        """Land and process ``days`` days, then run whatever the decision sensor asks for."""
        self.land(days)
        self.ingest_landed()
        requests = self.decisions()
        for request in requests:
            self.run(request)
        return requests
