"""Sensors: new landed days -> ingest runs; drift or staleness -> a candidate model run.

Sensors never read raw data or open the DuckDB file (a sensor tick must not contend with the
single DuckDB writer): they list landing folder names or read asset metadata from the
instance's event log, with a cursor.
"""


import dagster as dg

from ct_assets.core.ingest import list_landed_days
from ct_assets.defs.assets.ingest import complaints, labels, raw_events
from ct_assets.defs.partitions import days_partitions
from ct_assets.defs.resources import CTStorage


@dg.sensor(
    target=[raw_events, labels, complaints],
    minimum_interval_seconds=10,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Adds a partition for each new complete day folder in data/landing/ and ingests it.",
)
def landing_sensor(context: dg.SensorEvaluationContext, storage: CTStorage) -> dg.SensorResult | dg.SkipReason:
    landed = list_landed_days(storage.landing_dir)
    # Cursor = newest day already requested; the partition set also catches a day that lands late.
    known = set(context.instance.get_dynamic_partitions(days_partitions.name))
    new_days = [day for day in landed if day not in known]
    if not new_days:
        return dg.SkipReason(f"no new day folders ({len(landed)} landed, newest {context.cursor or 'none'})")
    return dg.SensorResult(
        run_requests=[dg.RunRequest(partition_key=day, run_key=f"landed:{day}", tags={"ct/trigger": "landing"})
                      for day in new_days],
        dynamic_partitions_requests=[days_partitions.build_add_request(new_days)],
        cursor=max([*new_days, context.cursor or ""]),
    )
