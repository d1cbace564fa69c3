"""Data-quality gates as asset checks. Blocking checks stop downstream assets on bad data.

Each check is a thin wrapper over ``core.data_quality``; thresholds come from ``CTSettings``
and are echoed in the check's metadata.
"""


import warnings
from collections.abc import Callable

import dagster as dg
from dagster_duckdb import DuckDBResource

from ct_assets.core.data import quality as dq
from ct_assets.defs.data.features import features
from ct_assets.defs.data.ingest import complaints, labels, raw_events
from ct_assets.defs.monitoring.assets import drift_report
from ct_assets.defs.partitions import days_partitions
from ct_assets.defs.resources import DUCKDB_POOL, CTSettings


def _result(outcome: dq.CheckOutcome, blocking: bool) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(
        passed=outcome.passed,
        description=outcome.description,
        metadata=outcome.metadata,
        severity=dg.AssetCheckSeverity.ERROR if blocking else dg.AssetCheckSeverity.WARN,
    )


def _day_check(asset: dg.AssetsDefinition, name: str, blocking: bool, description: str,
               evaluate: Callable[..., dq.CheckOutcome]) -> dg.AssetChecksDefinition:
    """A partitioned check that evaluates ``evaluate(con, day, settings)`` in the DuckDB pool."""

    def _check(context: dg.AssetCheckExecutionContext, duckdb: DuckDBResource,
               settings: CTSettings) -> dg.AssetCheckResult:
        with duckdb.get_connection() as con:
            return _result(evaluate(con, context.partition_key, settings), blocking)

    # Partitioned checks are a Dagster "preview" feature; they are what gives each day its own
    # check result, which the blocking gate needs.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", dg.PreviewWarning)
        return dg.asset_check(asset=asset, name=name, blocking=blocking, description=description,
                              partitions_def=days_partitions, pool=DUCKDB_POOL)(_check)


DATA_QUALITY_CHECKS = [
    _day_check(raw_events, "events_file_accepted", True,
               "The events file was readable, had the schema's columns and gave valid rows.",
               lambda con, day, s: dq.check_file_accepted(con, day, "events", require_rows=True)),
    _day_check(raw_events, "events_quarantine_share", True,
               "At most `max_quarantine_share` of the day's rows failed validation.",
               lambda con, day, s: dq.check_quarantine_share(con, day, "events", "raw_events", "day",
                                                             s.max_quarantine_share)),
    _day_check(raw_events, "events_unique_ids", True, "No event id is stored twice.",
               lambda con, day, s: dq.check_unique_ids(con, day)),
    _day_check(raw_events, "events_null_rate", True, "No nulls in required columns.",
               lambda con, day, s: dq.check_null_rate(con, day)),
    _day_check(raw_events, "events_row_count", False,
               "Row count at least `min_rows_per_day` and within tolerance of the recent median.",
               lambda con, day, s: dq.check_row_count(con, day, s.row_count_tolerance, s.min_rows_per_day)),
    _day_check(labels, "labels_file_accepted", False, "The labels file (if any) was readable.",
               lambda con, day, s: dq.check_file_accepted(con, day, "labels", require_rows=False)),
    _day_check(labels, "labels_rate", False, "The positive rate of arrived labels is plausible.",
               lambda con, day, s: dq.check_label_rate(con, day, s.min_label_rate, s.max_label_rate)),
    _day_check(complaints, "complaints_file_accepted", False, "The complaints file was readable and valid.",
               lambda con, day, s: dq.check_file_accepted(con, day, "complaints", require_rows=True)),
    _day_check(features, "features_complete", True,
               "One features row per event and no null/NaN/inf numeric feature.",
               lambda con, day, s: dq.check_features_complete(con, day)),
    # Drift is evidence for the decision, not bad data: a warning from `drift_warn_severity`. Only a
    # shift beyond `drift_block_severity` (off by default: severity never exceeds 1) blocks the day's
    # decision, for teams that want a human to look at an extreme shift (often a broken feed) first.
    _day_check(drift_report, "drift_below_warning", False,
               "Drift severity below `drift_warn_severity` (medium by default).",
               lambda con, day, s: dq.check_drift_severity(con, day, s.drift_warn_severity)),
    _day_check(drift_report, "drift_not_extreme", True,
               "Drift severity below `drift_block_severity`; above it the day's training decision waits.",
               lambda con, day, s: dq.check_drift_severity(con, day, s.drift_block_severity)),
]
