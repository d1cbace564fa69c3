"""The triggers' asks -> at most one `training_decision` run per day, requested by this one sensor."""

import dagster as dg

from ct_assets.defs.automation import running_sensor
from ct_assets.defs.decision.assets import training_decision
from ct_assets.defs.event_log import new_observations
from ct_assets.defs.run_requests import decision_request, has_decision_run, reports_by_day


@running_sensor(
    target=[training_decision],
    description="Requests a day's training decision once, on the asks the trigger sensors and the daily "
                "policy schedule report as `training_decision` observations; the run's ct/trigger and "
                "ct/reason tags name every trigger that asked. The only instigator of decision runs "
                "(run key decision:<day>), so triggers that fire at the same instant start one run.",
)
def decision_request_sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult:
    observations, cursor = new_observations(context, training_decision.key)
    asked = reports_by_day(observations)
    requests = [decision_request(day, reports) for day, reports in sorted(asked.items())
                if not has_decision_run(context.instance, day)]
    if requests:
        return dg.SensorResult(run_requests=requests, cursor=cursor)
    decided = ", ".join(sorted(asked))
    return dg.SensorResult(skip_reason=f"decision already requested for {decided}" if asked
                           else "no trigger asked for a decision", cursor=cursor)
