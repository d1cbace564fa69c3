"""Sensors and schedules. They never read raw data or open the DuckDB file (a tick must not contend
with the single DuckDB writer): they list landing folder names or read asset metadata from the
instance's event log with a cursor."""

from ct_assets.defs.sensors.decisions import (
    TRAINING_RUN_TAG,
    daily_policy_schedule,
    decision_sensor,
    periodic_retrain_schedule,
)
from ct_assets.defs.sensors.landing import DAY_ASSETS, landing_sensor
from ct_assets.defs.sensors.rollback import rollback_sensor
from ct_assets.defs.sensors.triggers import (
    DECISION_DAY_TAG,
    drift_sensor,
    freshness_sensor,
    label_sensor,
    performance_sensor,
)

TRIGGER_SENSORS = (drift_sensor, performance_sensor, label_sensor, freshness_sensor)

__all__ = [
    "DAY_ASSETS", "DECISION_DAY_TAG", "TRAINING_RUN_TAG", "TRIGGER_SENSORS", "daily_policy_schedule",
    "decision_sensor", "drift_sensor", "freshness_sensor", "label_sensor", "landing_sensor",
    "performance_sensor", "periodic_retrain_schedule", "rollback_sensor",
]
