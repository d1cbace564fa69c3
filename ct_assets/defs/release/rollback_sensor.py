"""A rollout verdict of `rollback` -> production_model restores the previous model."""

import dagster as dg

from ct_assets.defs.automation import running_sensor
from ct_assets.defs.event_log import new_materializations
from ct_assets.defs.release.production import production_model, rollout_monitor
from ct_assets.defs.tags import ACTION_TAG, MAX_REASON_CHARS, REASON_TAG, ROLLBACK_MODEL_TAG


@running_sensor(
    target=[production_model],
    description="Rolls back automatically: when `rollout_monitor` finds the newly promoted model worse than "
                "the previous one (live metric or complaints), requests `production_model` with "
                "ct/action=rollback, which restores the previous model and alerts.",
)
def rollback_sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult:
    verdicts, cursor = new_materializations(context, rollout_monitor.key)
    rollbacks = [meta for _, meta in verdicts if meta.get("verdict") == "rollback"]
    if not rollbacks:
        return dg.SensorResult(skip_reason=f"{len(verdicts)} new rollout verdicts, no rollback", cursor=cursor)
    meta = rollbacks[-1]
    return dg.SensorResult(run_requests=[dg.RunRequest(
        run_key=f"rollback:{meta['rollout_id']}",
        asset_selection=[production_model.key],
        tags={ACTION_TAG: "rollback", REASON_TAG: str(meta.get("reason", ""))[:MAX_REASON_CHARS],
              ROLLBACK_MODEL_TAG: str(meta.get("model_id", ""))})], cursor=cursor)
