"""Automation: the conditions assets use, the sensor that evaluates them, and how every sensor runs."""

from collections.abc import Callable

import dagster as dg

SENSOR_INTERVAL_SECONDS = 10


def running_sensor(**kwargs: object) -> Callable[[Callable[..., object]], dg.SensorDefinition]:
    """``dg.sensor`` as the pipeline's sensors use it: declared RUNNING, evaluated every 10 s."""
    return dg.sensor(minimum_interval_seconds=SENSOR_INTERVAL_SECONDS,
                     default_status=dg.DefaultSensorStatus.RUNNING, **kwargs)


def eager_after_checks() -> dg.AutomationCondition:
    """Run when an upstream partition updates, once every upstream blocking check has passed."""
    return dg.AutomationCondition.eager() & dg.AutomationCondition.all_deps_blocking_checks_passed()


def automation_sensor() -> dg.AutomationConditionSensorDefinition:
    # Declared RUNNING: a newcomer's `make run` must not need a click in the UI.
    return dg.AutomationConditionSensorDefinition(
        "ct_automation",
        target=dg.AssetSelection.all(),
        default_status=dg.DefaultSensorStatus.RUNNING,
        minimum_interval_seconds=15,
        emit_backfills=False,
        description="Evaluates every asset's automation condition (eager propagation after checks pass).",
    )
