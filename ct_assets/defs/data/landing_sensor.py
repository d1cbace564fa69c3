"""A landed day folder -> a partition and one run through ingest and monitoring."""

import dagster as dg

from ct_assets.core.data.ingest import scan_landing
from ct_assets.defs.automation import running_sensor
from ct_assets.defs.data.features import features
from ct_assets.defs.data.ingest import complaints, labels, raw_events
from ct_assets.defs.monitoring.assets import (
    complaint_report,
    concept_drift,
    drift_report,
)
from ct_assets.defs.partitions import days_partitions
from ct_assets.defs.release.production import rollout_monitor
from ct_assets.defs.resources import CTSettings, CTStorage
from ct_assets.defs.tags import TRIGGER_TAG
from ct_assets.defs.training.online import online_model

DAY_ASSETS = (raw_events, labels, complaints, features, drift_report, concept_drift, complaint_report,
              rollout_monitor)


@running_sensor(
    # One run per landed day carries it through monitoring; blocking checks stop the run early on
    # bad data. The trigger sensors then decide whether the day needs a training decision.
    target=[*DAY_ASSETS, online_model],
    description="Adds a partition for each new complete day folder in data/landing/ and runs that day "
                "through ingest, features, monitoring and the rollout monitor (plus the online update "
                "when online mode is on).",
)
def landing_sensor(context: dg.SensorEvaluationContext, storage: CTStorage,
                   settings: CTSettings) -> dg.SensorResult | dg.SkipReason:
    scan = scan_landing(storage.landing_dir)
    landed = scan.days
    ignored = "; ".join(reason for _, reason in scan.ignored[:5])
    if ignored:  # an upstream dropped something that is not a day folder: say so on every tick
        context.log.warning(f"{len(scan.ignored)} landing entries ignored: {ignored}")
    # The partition set, not only the cursor, says what was requested: a day that lands late is caught.
    known = set(context.instance.get_dynamic_partitions(days_partitions.name))
    new_days = [day for day in landed if day not in known]
    if not new_days:
        note = f"; {len(scan.ignored)} entries ignored: {ignored}" if ignored else ""
        return dg.SkipReason(f"no new day folders ({len(landed)} landed, newest {context.cursor or 'none'}){note}")
    selection = [a.key for a in DAY_ASSETS] + ([online_model.key] if settings.online_enabled else [])
    return dg.SensorResult(
        run_requests=[dg.RunRequest(partition_key=day, run_key=f"landed:{day}", asset_selection=selection,
                                    tags={TRIGGER_TAG: "landing"}) for day in new_days],
        dynamic_partitions_requests=[days_partitions.build_add_request(new_days)],
        cursor=max([*new_days, context.cursor or ""]),
    )
