"""A recorded decision -> the training path it chose (retrain or fine-tune, then production_model)."""

import dagster as dg

from ct_assets.core.decision.policy import main_trigger
from ct_assets.defs.automation import running_sensor
from ct_assets.defs.decision.assets import training_decision
from ct_assets.defs.event_log import new_materializations
from ct_assets.defs.release.production import production_model
from ct_assets.defs.run_requests import training_run_in_flight, training_run_tags
from ct_assets.defs.tags import (
    APPROVAL_TAG,
    DECISION_TAG,
    MAX_REASON_CHARS,
    REASON_TAG,
    TRIGGER_TAG,
    WINDOW_END_TAG,
)
from ct_assets.defs.training.candidates import CANDIDATE_ASSETS, finetuned_candidate, retrained_candidate


@running_sensor(
    target=[*CANDIDATE_ASSETS, production_model],
    description="Starts the training path a `training_decision` chose (retrained_candidate or "
                "finetuned_candidate, then production_model), tagged with the decision id and reasons. "
                "Reads decisions from the event log with a cursor; the decision id is the run key, so a "
                "re-evaluated tick never starts a second run for the same decision.",
)
def decision_sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult:
    decisions, cursor = new_materializations(context, training_decision.key)
    wanted = [(day, meta) for day, meta in decisions if meta.get("action") in ("retrain", "fine_tune")]
    if not wanted:
        return dg.SensorResult(skip_reason=f"{len(decisions)} new decisions, none asks for training",
                               cursor=cursor)
    # One training run at a time: decisions taken while a candidate is being built were taken
    # without knowing its outcome; the next decision will see it.
    in_flight = training_run_in_flight(context.instance)
    if in_flight:
        return dg.SensorResult(skip_reason=f"training run {in_flight[:8]} still in flight; "
                                           f"{len(wanted)} decision(s) superseded", cursor=cursor)
    # When several days were decided at once (catching up), the newest decision supersedes the rest.
    day, meta = max(wanted, key=lambda item: item[0])
    candidate = retrained_candidate if meta["action"] == "retrain" else finetuned_candidate
    fired = [str(rule) for rule in meta.get("fired_rules", [])]
    return dg.SensorResult(run_requests=[dg.RunRequest(
        run_key=str(meta["decision_id"]),
        asset_selection=[candidate.key, production_model.key],
        tags={**training_run_tags(), DECISION_TAG: str(meta["decision_id"]), TRIGGER_TAG: main_trigger(fired),
              REASON_TAG: "; ".join(fired)[:MAX_REASON_CHARS], WINDOW_END_TAG: day,
              APPROVAL_TAG: str(bool(meta.get("requires_approval"))).lower()})], cursor=cursor)
