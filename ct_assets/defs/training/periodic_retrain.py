"""The cron baseline: retrain every week whatever the evidence, to compare the policy against."""

import dagster as dg

from ct_assets.defs.release.production import production_model
from ct_assets.defs.run_requests import training_run_in_flight, training_run_tags
from ct_assets.defs.tags import REASON_TAG, TRIGGER_TAG
from ct_assets.defs.training.candidates import retrained_candidate


@dg.schedule(
    name="periodic_retrain",
    cron_schedule="0 3 * * 0",
    target=[retrained_candidate, production_model],
    # The baseline to compare the evidence-driven policy against; switch it on in the UI.
    default_status=dg.DefaultScheduleStatus.STOPPED,
    description="Cron baseline: retrain from scratch every Sunday 03:00, gates still apply; one training "
                "run at a time like the policy's.",
)
def periodic_retrain_schedule(context: dg.ScheduleEvaluationContext) -> dg.RunRequest | dg.SkipReason:
    in_flight = training_run_in_flight(context.instance)
    if in_flight:
        return dg.SkipReason(f"training run {in_flight[:8]} still in flight")
    return dg.RunRequest(tags={**training_run_tags(), TRIGGER_TAG: "schedule",
                               REASON_TAG: "weekly periodic retrain (the cron baseline)"})
