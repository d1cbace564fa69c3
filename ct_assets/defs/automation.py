"""Declarative Automation: the conditions assets use and the sensor that evaluates them."""


import dagster as dg


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
