"""Run requests: the day's `training_decision` (asked by the triggers, requested by one owner) and training runs.

Trigger sensors and the daily policy schedule never request a decision run themselves: each reports
what fired as an observation of the day's `training_decision` partition (`trigger_report`), and
`decision_request_sensor` alone turns those reports into run requests under the run key
``decision:<day>``. Run keys dedupe only within one instigator, and the daemon never evaluates one
sensor twice at once, so one owner keeps "at most one decision run per day" even when every trigger
and the schedule tick at the same instant.
"""

import json
import os

import dagster as dg

from ct_assets.defs.decision.assets import training_decision
from ct_assets.defs.event_log import IN_FLIGHT
from ct_assets.defs.tags import DECISION_DAY_TAG, MAX_REASON_CHARS, REASON_TAG, TRAINING_RUN_TAG, TRIGGER_TAG

# On Kubernetes, training runs can ask for a GPU node: the JSON of a `dagster-k8s/config` tag (e.g.
# resource limits nvidia.com/gpu: 1) from the environment, so the choice stays configuration.
K8S_CONFIG_ENV = "CT_TRAINING_RUN_K8S_CONFIG"
TRIGGER_SEPARATOR = "+"  # a decision run asked for by several triggers: ct/trigger=drift+freshness


def trigger_report(trigger: str, day: str, reason: str) -> dg.AssetObservation:
    """A trigger's ask for ``day``'s decision, as an observation of that `training_decision` partition."""
    return dg.AssetObservation(asset_key=training_decision.key, partition=day,
                               metadata={"trigger": trigger, "reason": reason[:MAX_REASON_CHARS]})


def reports_by_day(observations: list[tuple[str, dict[str, object]]]) -> dict[str, list[tuple[str, str]]]:
    """The (trigger, reason) reports among `training_decision` observations (partition, metadata), per day."""
    reports: dict[str, list[tuple[str, str]]] = {}
    for day, meta in observations:
        if day and "trigger" in meta:
            reports.setdefault(day, []).append((str(meta["trigger"]), str(meta.get("reason", ""))))
    return reports


def has_decision_run(instance: dg.DagsterInstance, day: str) -> bool:
    """Whether ``day`` already has a decision run (queued, running or done): a day is decided once."""
    return bool(instance.get_run_records(dg.RunsFilter(tags={DECISION_DAY_TAG: day}), limit=1))


def decision_request(day: str, reports: list[tuple[str, str]]) -> dg.RunRequest:
    """The one run request for ``day``'s decision, tagged with every trigger that asked and why."""
    triggers = list(dict.fromkeys(trigger for trigger, _ in reports))
    reasons = list(dict.fromkeys(reason for _, reason in reports if reason))
    return dg.RunRequest(
        partition_key=day, run_key=f"decision:{day}", asset_selection=[training_decision.key],
        tags={TRIGGER_TAG: TRIGGER_SEPARATOR.join(triggers), REASON_TAG: "; ".join(reasons)[:MAX_REASON_CHARS],
              DECISION_DAY_TAG: day})


def training_run_in_flight(instance: dg.DagsterInstance) -> str | None:
    """The id of a training run queued or running, if any: one training run at a time."""
    records = instance.get_run_records(dg.RunsFilter(tags={TRAINING_RUN_TAG: "true"}, statuses=IN_FLIGHT), limit=1)
    return records[0].dagster_run.run_id if records else None


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
