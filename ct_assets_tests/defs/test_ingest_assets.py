import dagster as dg
import duckdb

from ct_assets.core.data import schema
from ct_assets.defs.data.features import features
from ct_assets.defs.data.ingest import complaints, labels, raw_events
from ct_assets.defs.data.landing_sensor import landing_sensor
from ct_assets.defs.data.quality_checks import DATA_QUALITY_CHECKS
from ct_assets.defs.monitoring.assets import drift_report
from ct_assets.defs.tags import TRIGGER_TAG
from ct_assets_tests.builders import events_frame, labels_frame, write_parquet

DAYS = ["2025-01-01", "2025-01-02", "2025-01-03"]
INGEST = [raw_events, labels, complaints, features, *DATA_QUALITY_CHECKS]


def land_day(data_dir, day, n=50, first_id=None, drop=()):
    first = first_id if first_id is not None else DAYS.index(day) * 1000 + 1
    write_parquet(events_frame(day, n, first_id=first).drop(columns=list(drop)),
                  data_dir / "landing" / day / schema.EVENTS_FILE)


def run_sensor(instance, resources):
    context = dg.build_sensor_context(instance=instance, resources=resources)
    return landing_sensor(context), context


def test_landing_sensor_adds_partitions_and_requests_each_day_once(instance, resources, data_dir):
    for day in DAYS[:2]:
        land_day(data_dir, day)
    (data_dir / "landing" / ".2025-01-03.tmp").mkdir()
    result, context = run_sensor(instance, resources)
    assert [r.partition_key for r in result.run_requests] == DAYS[:2]
    assert [r.run_key for r in result.run_requests] == ["landed:2025-01-01", "landed:2025-01-02"]
    assert result.dynamic_partitions_requests[0].partition_keys == DAYS[:2]
    assert result.cursor == "2025-01-02"
    instance.add_dynamic_partitions("days", DAYS[:2])
    (data_dir / "landing" / "2026-02-30").mkdir()  # not a calendar day: reported, never a partition
    again = landing_sensor(dg.build_sensor_context(instance=instance, resources=resources, cursor=result.cursor))
    assert isinstance(again, dg.SkipReason)
    assert "1 entries ignored" in again.skip_message and "2026-02-30" in again.skip_message
    land_day(data_dir, DAYS[2])
    third = landing_sensor(dg.build_sensor_context(instance=instance, resources=resources, cursor=result.cursor))
    assert [r.partition_key for r in third.run_requests] == [DAYS[2]]


def test_materialize_days_then_bad_day_blocks_features(instance, resources, data_dir):
    for day in DAYS[:2]:
        land_day(data_dir, day)
    write_parquet(labels_frame([1, 2, 3], [0, 1, 0], DAYS[1]), data_dir / "landing" / DAYS[1] / schema.LABELS_FILE)
    land_day(data_dir, DAYS[2], drop=("price",))
    instance.add_dynamic_partitions("days", DAYS)
    for day in DAYS[:2]:
        result = dg.materialize(INGEST, partition_key=day, instance=instance, resources=resources)
        assert result.success
    bad = dg.materialize(INGEST, partition_key=DAYS[2], instance=instance, resources=resources,
                         raise_on_error=False)
    checks = {e.check_name: e.passed for e in bad.get_asset_check_evaluations()}
    assert checks["events_file_accepted"] is False
    materialized = {e.asset_key.to_user_string() for e in bad.get_asset_materialization_events()}
    assert "raw_events" in materialized and "features" not in materialized
    with duckdb.connect(str(data_dir / "warehouse.duckdb"), read_only=True) as con:
        per_day = con.execute("SELECT strftime(day, '%Y-%m-%d'), count(*) FROM features GROUP BY 1 ORDER BY 1").fetchall()
        assert per_day == [(DAYS[0], 50), (DAYS[1], 50)]
        assert con.execute("SELECT count(*) FROM labels").fetchall() == [(3,)]
        assert con.execute("SELECT count(*) FROM file_issues WHERE source = 'events'").fetchall() == [(1,)]
    assert list((data_dir / "quarantine" / DAYS[2]).glob("*events.parquet"))


def test_manual_and_automatic_runs_write_the_same_rows(instance, resources, data_dir):
    for day in DAYS[:2]:
        land_day(data_dir, day)
    instance.add_dynamic_partitions("days", DAYS[:2])
    assets = [raw_events, labels, complaints, features, drift_report, *DATA_QUALITY_CHECKS]
    snapshots = []
    for tags in ({TRIGGER_TAG: "landing"}, {}, {"dagster/auto_materialize": "true"}):
        for day in DAYS[:2]:
            assert dg.materialize(assets, partition_key=day, instance=instance, resources=resources, tags=tags).success
        with duckdb.connect(str(data_dir / "warehouse.duckdb"), read_only=True) as con:
            snapshots.append([
                con.execute("SELECT count(*), sum(event_id) FROM raw_events").fetchall(),
                con.execute("SELECT count(*) FROM features").fetchall(),
                con.execute("SELECT report_id, partition, reference_id, severity FROM drift_reports "
                            "ORDER BY partition").fetchall(),
                con.execute("SELECT count(*) FROM drift_feature_results").fetchall(),
            ])
    assert snapshots[0] == snapshots[1] == snapshots[2]
    assert snapshots[0][0][0][0] == 100 and len(snapshots[0][2]) == 2
