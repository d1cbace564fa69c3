"""A recorded decision -> the training path it chose; the cron baselines."""

import json
import os

import dagster as dg

from ct_assets.defs.decision.triggers import DECISION_DAY_TAG
from ct_assets.defs.event_log import IN_FLIGHT, new_materializations
from ct_assets.defs.partitions import days_partitions
from ct_assets.defs.release.production import production_model
from ct_assets.defs.training.candidates import (
    APPROVAL_TAG,
    CANDIDATE_ASSETS,
    DECISION_TAG,
    REASON_TAG,
    TRIGGER_TAG,
    WINDOW_END_TAG,
    finetuned_candidate,
    retrained_candidate,
    training_decision,
)

TRAINING_RUN_TAG = "ct/training_run"
# On Kubernetes, training runs can ask for a GPU node: the JSON of a `dagster-k8s/config` tag (e.g.
# resource limits nvidia.com/gpu: 1) from the environment, so the choice stays configuration.
K8S_CONFIG_ENV = "CT_TRAINING_RUN_K8S_CONFIG"


def training_run_tags() -> dict[str, str]:
    """Tags every training run carries: the one-at-a-time marker, plus the GPU request when configured."""
    tags = {TRAINING_RUN_TAG: "true"}
    k8s_config = os.environ.get(K8S_CONFIG_ENV, "").strip()
    if k8s_config:
        try:
            json.loads(k8s_config)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{K8S_CONFIG_ENV} must be JSON (a dagster-k8s/config tag value): {exc}") from None
        tags["dagster-k8s/config"] = k8s_config
    return tags


def _main_trigger(fired_rules: list[str]) -> str:
    """The rule that best names why a candidate was asked for (for run tags and the registry)."""
    for rule in ("bootstrap", "drift_scope", "concept_drift", "falling_metric", "rising_complaints",
                 "staleness", "label_accumulation", "architecture_change", "technical_debt"):
        if rule in fired_rules:
            return rule
    return fired_rules[0] if fired_rules else "policy"


@dg.sensor(
    target=[*CANDIDATE_ASSETS, production_model],
    minimum_interval_seconds=10,
    default_status=dg.DefaultSensorStatus.RUNNING,
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
    in_flight = context.instance.get_run_records(
        dg.RunsFilter(tags={TRAINING_RUN_TAG: "true"}, statuses=IN_FLIGHT), limit=1)
    if in_flight:
        return dg.SensorResult(skip_reason=f"training run {in_flight[0].dagster_run.run_id[:8]} still in flight; "
                                           f"{len(wanted)} decision(s) superseded", cursor=cursor)
    # When several days were decided at once (catching up), the newest decision supersedes the rest.
    day, meta = max(wanted, key=lambda item: item[0])
    candidate = retrained_candidate if meta["action"] == "retrain" else finetuned_candidate
    fired = [str(rule) for rule in meta.get("fired_rules", [])]
    return dg.SensorResult(run_requests=[dg.RunRequest(
        run_key=str(meta["decision_id"]),
        asset_selection=[candidate.key, production_model.key],
        tags={**training_run_tags(), DECISION_TAG: str(meta["decision_id"]), TRIGGER_TAG: _main_trigger(fired),
              REASON_TAG: "; ".join(fired)[:1000], WINDOW_END_TAG: day,
              APPROVAL_TAG: str(bool(meta.get("requires_approval"))).lower()})], cursor=cursor)


@dg.schedule(
    cron_schedule="0 3 * * *",
    target=[training_decision],
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Cron trigger: evaluates the policy on the newest landed day once a day, so rules no "
                "sensor watches (technical debt, budget, high-risk proactive retraining) are weighed "
                "even on quiet days. Same policy, same decision record.",
)
def daily_policy_schedule(context: dg.ScheduleEvaluationContext) -> dg.RunRequest | dg.SkipReason:
    days = context.instance.get_dynamic_partitions(days_partitions.name)
    if not days:
        return dg.SkipReason("no landed day yet")
    day = max(days)
    if context.instance.get_run_records(dg.RunsFilter(tags={DECISION_DAY_TAG: day}), limit=1):
        return dg.SkipReason(f"{day} already has a decision run")
    return dg.RunRequest(partition_key=day, run_key=f"decision:{day}",
                         tags={TRIGGER_TAG: "schedule", REASON_TAG: "daily policy evaluation", DECISION_DAY_TAG: day})


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
    in_flight = context.instance.get_run_records(
        dg.RunsFilter(tags={TRAINING_RUN_TAG: "true"}, statuses=IN_FLIGHT), limit=1)
    if in_flight:
        return dg.SkipReason(f"training run {in_flight[0].dagster_run.run_id[:8]} still in flight")
    return dg.RunRequest(tags={**training_run_tags(), TRIGGER_TAG: "schedule",
                               REASON_TAG: "weekly periodic retrain (the cron baseline)"})
