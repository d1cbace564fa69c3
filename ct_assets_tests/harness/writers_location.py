"""A test code location for the writers test: the day assets as partitioned jobs for a backfill.

The shipped Definitions pin the in-process executor (a DuckDB step waits for the pool anyway), so
run config cannot select `multiprocess` there. This location serves the *same* asset, resource and
pool definitions as partitioned jobs on either executor, and no sensors: a backfill of a multiprocess
job puts many processes at once (runs, and steps within a run) in front of the one DuckDB file, and
only the `duckdb_warehouse` pool stands between them.

    dagster job backfill -m ct_assets_tests.harness.writers_location -j ingest_multiprocess \
        --partitions 2025-01-01,2025-01-02 --noprompt

Jobs: ``<selection>_<executor>`` with selection ``ingest`` (raw_events, labels, complaints, features)
or ``monitoring`` (those plus drift_report, concept_drift, complaint_report), executor
``multiprocess`` (forkserver: each step forks from a process that imported this module once) or
``in_process`` (the shipped executor). Asset checks are left out: each would be one more pooled step.
"""

import dagster as dg

from ct_assets.defs.data.features import features
from ct_assets.defs.data.ingest import complaints, labels, raw_events
from ct_assets.defs.monitoring.assets import (
    complaint_report,
    concept_drift,
    drift_report,
)
from ct_assets.defs.partitions import days_partitions
from ct_assets.defs.resources import default_resources

INGEST_ASSETS = (raw_events, labels, complaints, features)
SELECTIONS: dict[str, tuple[dg.AssetsDefinition, ...]] = {
    "ingest": INGEST_ASSETS,
    "monitoring": (*INGEST_ASSETS, drift_report, concept_drift, complaint_report),
}
EXECUTORS: dict[str, dg.ExecutorDefinition] = {
    "multiprocess": dg.multiprocess_executor.configured({"start_method": {"forkserver": {}}}),
    "in_process": dg.in_process_executor,
}


def job_name(selection: str, executor: str) -> str:
    """The backfill job for ``selection`` (a SELECTIONS key) on ``executor`` (an EXECUTORS key)."""
    if selection not in SELECTIONS or executor not in EXECUTORS:
        raise ValueError(f"unknown writers job {selection!r}/{executor!r}: "
                         f"selections {sorted(SELECTIONS)}, executors {sorted(EXECUTORS)}")
    return f"{selection}_{executor}"


defs = dg.Definitions(
    assets=list(SELECTIONS["monitoring"]),
    jobs=[dg.define_asset_job(job_name(selection, executor),
                              selection=dg.AssetSelection.assets(*assets).without_checks(),
                              partitions_def=days_partitions, executor_def=executor_def)
          for selection, assets in SELECTIONS.items() for executor, executor_def in EXECUTORS.items()],
    resources=default_resources(),
)
