"""Concurrency: analysts read while the pipeline writes, runs queued at once take turns at the warehouse,
and concurrent sensor ticks never start two runs for one decision.

The two daemon tests (marked ``deployment``: a real `dagster-daemon` subprocess, minutes each) run the
scenarios of ``ct_assets_tests.harness.scenarios``; benchmarks/concurrency_benchmark.py runs the same scenarios at full
size and prints the figures. The sensor tests drive the sensor daemon's own tick and submission code
in-process, against an instance whose run queue nobody drains (runs stay QUEUED, nothing executes).

Sizes are set for `make test` on a loaded 2-core machine: three days of 3,500 orders are the fewest
that train and promote a first model (the policy wants 5,000 labels: 2 x 2,800 by the third day),
and six partitions are enough for four runs at once plus a queue behind them (each step of the
multiprocess executor is its own process, several seconds apiece here).
"""

import logging
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import dagster as dg
import duckdb
import pytest
from dagster._core.remote_origin import InProcessCodeLocationOrigin
from dagster._core.remote_representation.external import RemoteSensor
from dagster._core.scheduler.instigation import (
    InstigatorState,
    InstigatorTick,
    InstigatorType,
)
from dagster._core.test_utils import (
    InProcessTestWorkspaceLoadTarget,
    create_test_daemon_workspace_context,
    freeze_time,
)
from dagster._core.types.loadable_target_origin import LoadableTargetOrigin
from dagster._core.utils import make_new_run_id
from dagster._core.workspace.context import WorkspaceProcessContext
from dagster._daemon.sensor import (
    _submit_run_request,
    execute_sensor_iteration,
    fetch_existing_runs,
)

from ct_assets.core.ops.snapshots import publish_snapshot
from ct_assets.defs.decision.request_sensor import decision_request_sensor
from ct_assets.defs.decision.triggers import TRIGGER_SENSORS, daily_policy_schedule
from ct_assets.defs.resources import CTSettings
from ct_assets.defs.tags import DECISION_DAY_TAG, DECISION_TAG, REASON_TAG, TRIGGER_TAG
from ct_assets.defs.training.path_sensor import decision_sensor
from ct_assets_tests.harness.sandbox import ROOT
from ct_assets_tests.harness.scenarios import run_analysts_scenario, run_writers_scenario
from ct_assets_tests.harness.snapshot_readers import SnapshotReaders, check_snapshot
from ct_assets_tests.harness.writers_location import INGEST_ASSETS, job_name

# Four days: the first model needs 2.5 days' worth of labelled rows, and labels arrive a day or more late.
ANALYST_DAYS, ANALYST_ROWS_PER_DAY, READERS = 4, 3500, 8
MIN_SNAPSHOT_VERSIONS = 3  # publications the readers must have seen (about 4 happen)
PUBLICATIONS = 30  # back-to-back, without the pipeline
ANALYSTS_DEADLINE_S = 360  # 2 to 4 minutes on 2 cores, at load averages 2 to 12
BACKFILL_PARTITIONS, BACKFILL_ROWS_PER_DAY = 6, 300
WRITERS_DEADLINE_S = 360  # 2 to 3.5 minutes on the same machine
DAY = "2025-01-05"
LOGGER = logging.getLogger("ct_assets_tests.sensor_daemon")
TRIGGERS = {"drift_sensor": "drift", "performance_sensor": "performance", "label_sensor": "labels",
            "freshness_sensor": "freshness"}  # trigger sensor -> the ct/trigger name it asks under


# --- Analysts: the consistency query, and readers against back-to-back publications -----------------------

def live_warehouse(path: Path) -> duckdb.DuckDBPyConnection:
    """A small live database with the tables the consistency query cross-checks: model B serves."""
    con = duckdb.connect(str(path))
    con.execute("CREATE TABLE raw_events AS SELECT range AS event_id FROM range(50)")
    con.execute("CREATE TABLE model_registry (model_id VARCHAR, status VARCHAR)")
    con.execute("INSERT INTO model_registry VALUES ('m-a', 'retired'), ('m-b', 'production')")
    con.execute("CREATE TABLE deployments (deployment_id BIGINT, model_id VARCHAR, previous_model_id VARCHAR, "
                "action VARCHAR)")
    con.execute("INSERT INTO deployments VALUES (1, 'm-a', NULL, 'promote'), (2, 'm-b', 'm-a', 'promote')")
    return con


SNAPSHOT_TABLES = ("raw_events", "model_registry", "deployments")
TAMPERINGS = {
    "a row added after publishing": ("INSERT INTO raw_events VALUES (999)", "raw_events has 51 rows"),
    "two production models": ("UPDATE model_registry SET status = 'production'", "2 production models"),
    "a deployment of an unknown model": ("INSERT INTO deployments VALUES (3, 'm-x', 'm-b', 'reject')",
                                         "names m-x"),
    "the pointer not where the last promotion put it": (
        "UPDATE model_registry SET status = CASE model_id WHEN 'm-a' THEN 'production' ELSE 'retired' END",
        "the last promote/rollback deployed m-b"),
}


@pytest.mark.parametrize("tampering", sorted(TAMPERINGS))
def test_the_consistency_query_catches_a_torn_snapshot(tmp_path: Path, tampering: str) -> None:
    with live_warehouse(tmp_path / "live.duckdb") as con:
        info = publish_snapshot(con, tmp_path / "snapshots", SNAPSHOT_TABLES)
    with duckdb.connect(str(info.path), read_only=True) as snapshot:
        clean = check_snapshot(snapshot)
    assert clean.problems == ()
    assert clean.version.startswith(info.published_at) and "raw_events=50" in clean.version
    sql, expected = TAMPERINGS[tampering]
    with duckdb.connect(str(info.path)) as snapshot:
        snapshot.execute(sql)
        problems = check_snapshot(snapshot).problems
    assert any(expected in problem for problem in problems), problems


def test_readers_never_fail_while_snapshots_are_replaced_back_to_back(tmp_path: Path) -> None:
    snapshot_dir = tmp_path / "snapshots"
    with live_warehouse(tmp_path / "live.duckdb") as con, \
            SnapshotReaders(snapshot_dir / "latest.duckdb", count=READERS, pause_seconds=0.01) as readers:
        readers.wait_until_reading()
        for batch in range(PUBLICATIONS):
            con.execute("INSERT INTO raw_events SELECT 1000 * ? + range FROM range(10)", [batch + 1])
            publish_snapshot(con, snapshot_dir, SNAPSHOT_TABLES)
            time.sleep(0.05)
        stats = readers.stop()
    print(f"back-to-back: {PUBLICATIONS} publications, {stats.readers} readers, {stats.queries} queries, "
          f"{stats.failed} failed, {stats.torn} torn, {len(stats.versions)} versions seen")
    assert stats.failed == 0 and stats.torn == 0, stats.examples
    assert stats.readers == READERS and stats.queries > 0
    assert len(stats.versions) >= 2  # the readers saw the content change under the same path


# --- Analysts vs the pipeline, and writers queued at once: the real daemon ---------------------------------

@pytest.mark.deployment
def test_analysts_never_see_a_failed_query_or_a_torn_snapshot(tmp_path: Path) -> None:
    outcome = run_analysts_scenario(tmp_path, ANALYST_DAYS, ANALYST_ROWS_PER_DAY, READERS, ANALYSTS_DEADLINE_S)
    stats = outcome.readers
    print(f"analysts: {stats.readers} readers, {stats.queries} queries, {stats.failed} failed, {stats.torn} torn, "
          f"{len(stats.versions)} snapshot versions seen of {outcome.publications} published; "
          f"{sum(outcome.runs.values())} runs in {outcome.elapsed_s:.0f} s")

    assert stats.failed == 0 and stats.torn == 0, stats.examples
    assert stats.queries > 0
    assert len(stats.versions) >= MIN_SNAPSHOT_VERSIONS, sorted(stats.versions)
    # The pipeline did its job meanwhile: every run succeeded, a first model serves, nothing is broken.
    assert outcome.failed_runs == ()
    assert len(outcome.production_models) == 1
    assert outcome.lock_errors == ()
    assert outcome.doctor.ok, outcome.doctor.render()


@pytest.mark.deployment
def test_a_backfill_queued_at_once_takes_turns_at_the_warehouse(tmp_path: Path) -> None:
    outcome = run_writers_scenario(tmp_path, BACKFILL_PARTITIONS, BACKFILL_ROWS_PER_DAY,
                                   job_name("ingest", "multiprocess"), WRITERS_DEADLINE_S)
    print(f"writers: {len(outcome.run_partitions)} partitions in {outcome.elapsed_s:.0f} s "
          f"({outcome.partitions_per_minute:.1f}/min), up to {outcome.max_parallel_runs} runs and "
          f"{outcome.max_parallel_steps} DuckDB step at once, {outcome.step_processes} step processes")

    assert outcome.run_partitions == tuple(sorted(outcome.partitions))  # one run per partition
    assert outcome.failed_runs == ()
    assert outcome.steps == BACKFILL_PARTITIONS * len(INGEST_ASSETS)
    assert outcome.step_processes == outcome.steps  # the multiprocess executor: a process per step
    # However many runs the queue let in at once, the pool let one warehouse step run at a time.
    assert outcome.max_parallel_steps == 1
    assert outcome.lock_errors == ()
    assert outcome.ingested_days == BACKFILL_PARTITIONS
    assert outcome.doctor.ok, outcome.doctor.render()


# --- Sensors: the sensor daemon's tick and submission code, in-process -----------------------------------

@pytest.fixture
def daemon_context(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[WorkspaceProcessContext]:
    """The shipped code location loaded as the sensor daemon loads it, on a throwaway instance whose
    queue is never drained: a submitted run stays QUEUED (as behind a busy warehouse) and never runs."""
    monkeypatch.setenv("CT_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("CT_DUCKDB_PATH", str(tmp_path / "data" / "warehouse.duckdb"))
    queued = {"run_coordinator": {"module": "dagster._core.run_coordinator", "class": "QueuedRunCoordinator"}}
    location = InProcessCodeLocationOrigin(LoadableTargetOrigin(module_name="ct_assets.definitions",
                                                                working_directory=str(ROOT)))
    with dg.instance_for_test(overrides=queued) as instance, \
            create_test_daemon_workspace_context(InProcessTestWorkspaceLoadTarget(location), instance) as context:
        yield context


def remote_sensor(context: WorkspaceProcessContext, name: str) -> RemoteSensor:
    (entry,) = context.create_request_context().get_code_location_entries().values()
    (repository,) = entry.code_location.get_repositories().values()
    return repository.get_sensor(name)


def threaded_daemon_tick(context: WorkspaceProcessContext, at: float) -> None:
    """``daemon_tick`` with `sensors: use_threads: true`: each sensor ticks on the daemon's thread pool."""
    futures: dict[str, Future] = {}
    with freeze_time(at), ThreadPoolExecutor(max_workers=8) as pool:
        list(execute_sensor_iteration(context, LOGGER, threadpool_executor=pool, submit_threadpool_executor=None,
                                      sensor_tick_futures=futures))
    for future in futures.values():
        future.result()


def daemon_tick(context: WorkspaceProcessContext, at: float) -> None:
    """One pass of the sensor daemon at time ``at``: every running sensor ticks in turn, and submits its
    runs before the next one evaluates (dagster.yaml keeps the default `sensors: use_threads: false`)."""
    with freeze_time(at):
        list(execute_sensor_iteration(context, LOGGER, threadpool_executor=None, submit_threadpool_executor=None))


def submit_like_the_sensor_daemon(context: WorkspaceProcessContext, sensor_name: str,
                                  requests: list[dg.RunRequest]) -> None:
    """Submit ``requests`` as the sensor daemon submits a tick's requests: look up existing runs by run
    key for this sensor, create the run only if none exists, queue it (one daemon: one at a time)."""
    sensor = remote_sensor(context, sensor_name)
    for request in requests:
        existing = fetch_existing_runs(context.instance, sensor, [request])
        _submit_run_request(make_new_run_id(), request, context, sensor, existing, LOGGER, None)


def sensor_state(instance: dg.DagsterInstance, sensor_name: str) -> InstigatorState:
    (state,) = [s for s in instance.all_instigator_state(instigator_type=InstigatorType.SENSOR)
                if s.name == sensor_name]
    return state


def rewind_cursor(instance: dg.DagsterInstance, sensor_name: str, cursor: str | None) -> None:
    """Put ``sensor_name``'s stored cursor back (a tick re-evaluated, e.g. after a daemon crash)."""
    state = sensor_state(instance, sensor_name)
    instance.update_instigator_state(state.with_data(state.instigator_data._replace(cursor=cursor)))


def evaluate_at_once(evaluations: list[Callable[[], object]]) -> list[object]:
    """Run every evaluation in its own thread, released together by a barrier; their results in order."""
    barrier = threading.Barrier(len(evaluations))
    results: list[object] = [None] * len(evaluations)

    def run(index: int) -> None:
        barrier.wait()
        results[index] = evaluations[index]()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(evaluations))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return results


def record_decision(instance: dg.DagsterInstance, day: str, action: str, decision_id: str) -> None:
    instance.report_runless_asset_event(dg.AssetMaterialization(
        asset_key="training_decision", partition=day,
        metadata={"decision_id": decision_id, "action": action, "requires_approval": False,
                  "fired_rules": ["drift_scope"]}))


def runs_tagged(instance: dg.DagsterInstance, key: str, value: str) -> list[dg.DagsterRun]:
    return list(instance.get_runs(dg.RunsFilter(tags={key: value})))


def test_concurrent_decision_sensor_evaluations_start_one_run_per_decision(
        daemon_context: WorkspaceProcessContext) -> None:
    instance = daemon_context.instance
    record_decision(instance, DAY, "retrain", "dec-concurrent")
    results = evaluate_at_once([lambda: decision_sensor(dg.build_sensor_context(instance=instance, cursor=None))
                                for _ in range(8)])

    requests = [request for result in results for request in result.run_requests]
    assert len(requests) == 8  # every evaluation wants the run...
    assert {r.run_key for r in requests} == {"dec-concurrent"}  # ...under the same key, the decision id
    submit_like_the_sensor_daemon(daemon_context, "decision_sensor", requests)
    (run,) = runs_tagged(instance, DECISION_TAG, "dec-concurrent")
    assert run.tags["dagster/run_key"] == "dec-concurrent"
    assert run.status == dg.DagsterRunStatus.QUEUED


def test_a_decision_sensor_tick_repeated_with_the_same_cursor_starts_no_second_run(
        daemon_context: WorkspaceProcessContext) -> None:
    instance = daemon_context.instance
    record_decision(instance, DAY, "fine_tune", "dec-repeat")
    start = time.time()
    daemon_tick(daemon_context, start)
    (run,) = runs_tagged(instance, DECISION_TAG, "dec-repeat")
    assert sensor_state(instance, "decision_sensor").instigator_data.cursor is not None

    sensor = remote_sensor(daemon_context, "decision_sensor")

    def latest_tick() -> InstigatorTick:
        (tick,) = instance.get_ticks(sensor.get_remote_origin_id(), sensor.selector_id, limit=1)
        return tick

    # The same cursor again while the run waits in the queue: the in-flight guard skips it.
    rewind_cursor(instance, "decision_sensor", None)
    daemon_tick(daemon_context, start + 30)
    assert [r.run_id for r in runs_tagged(instance, DECISION_TAG, "dec-repeat")] == [run.run_id]
    assert "still in flight" in latest_tick().skip_reason

    # And once that run has ended (here: failed): the sensor asks again, the daemon finds the run key taken.
    instance.report_run_failed(instance.get_run_by_id(run.run_id))
    rewind_cursor(instance, "decision_sensor", None)
    daemon_tick(daemon_context, start + 60)
    assert [r.run_id for r in runs_tagged(instance, DECISION_TAG, "dec-repeat")] == [run.run_id]
    assert latest_tick().run_keys == ["dec-repeat"] and latest_tick().run_ids == []  # requested, skipped by key


def report_day_evidence(instance: dg.DagsterInstance, day: str, scope: str = "local") -> None:
    """Evidence on ``day`` (a landed partition) that fires every trigger sensor: drift, concept drift and
    complaints, many labels, and (no production model yet) the freshness sensor's bootstrap."""
    instance.add_dynamic_partitions("days", [day])

    def report(asset: str, **metadata: object) -> None:
        instance.report_runless_asset_event(dg.AssetMaterialization(asset_key=asset, partition=day, metadata=metadata))

    report("drift_report", scope=scope, severity=0.6, severity_level="medium", affected_segments=["region=south"])
    report("concept_drift", concept_drift=True, verdict="degraded", beyond_covariate=True)
    report("complaint_report", alert=True, rate_ratio=1.8)
    # Past the policy's label trigger, which is in days' worth of labels (accumulated_trigger_batches = 10):
    # eleven 2,500-row label batches arrive, so a typical day is 2,500 rows and 27,500 exceed ten of them.
    for _ in range(11):
        report("labels", rows_valid=2_500)


def test_trigger_sensors_firing_for_the_same_day_start_one_decision_run(
        daemon_context: WorkspaceProcessContext) -> None:
    instance = daemon_context.instance
    report_day_evidence(instance, DAY)
    start = time.time()
    daemon_tick(daemon_context, start)
    daemon_tick(daemon_context, start + 15)  # the request sensor may have ticked before the triggers asked

    (run,) = runs_tagged(instance, DECISION_DAY_TAG, DAY)
    # Every trigger fired: those that ticked before the request sensor asked, the rest found the day's run.
    asked = set()
    for name, trigger in TRIGGERS.items():
        sensor = remote_sensor(daemon_context, name)
        ticks = instance.get_ticks(sensor.get_remote_origin_id(), sensor.selector_id)
        assert all(tick.run_ids == [] for tick in ticks)  # a trigger only asks
        reasons = " ".join(tick.skip_reason or "" for tick in ticks)
        if f"asked decision_request_sensor for the decision of {DAY}" in reasons:
            asked.add(trigger)
        else:
            assert f"decision already requested for {DAY}" in reasons, name
    assert asked and set(run.tags[TRIGGER_TAG].split("+")) == asked  # the run names every trigger that asked
    requester = remote_sensor(daemon_context, "decision_request_sensor")
    assert [tick.run_ids for tick in instance.get_ticks(requester.get_remote_origin_id(), requester.selector_id)
            if tick.run_ids] == [[run.run_id]]

    # More evidence for the same day later (a re-run drift report, now global): still one decision run.
    report_day_evidence(instance, DAY, scope="global")
    daemon_tick(daemon_context, start + 30)
    daemon_tick(daemon_context, start + 45)
    assert [r.run_id for r in runs_tagged(instance, DECISION_DAY_TAG, DAY)] == [run.run_id]
    # The cron trigger for the same day stands down too.
    scheduled = daily_policy_schedule(dg.build_schedule_context(instance=instance))
    assert isinstance(scheduled, dg.SkipReason) and "already has a decision run" in scheduled.skip_message


def test_triggers_and_the_schedule_evaluated_at_the_same_moment_start_one_decision_run(
        daemon_context: WorkspaceProcessContext) -> None:
    instance = daemon_context.instance
    report_day_evidence(instance, DAY)
    resources = {"settings": CTSettings()}
    results = evaluate_at_once([
        *(lambda sensor=sensor: sensor(dg.build_sensor_context(instance=instance, resources=resources))
          for sensor in TRIGGER_SENSORS),
        lambda: daily_policy_schedule(dg.build_schedule_context(instance=instance))])  # records its own ask
    for result in results[:-1]:
        assert result.run_requests == []  # a trigger only asks...
        for event in result.asset_events:  # ...and the sensor daemon records the ask
            instance.report_runless_asset_event(event)
    assert "asked decision_request_sensor" in results[-1].skip_message

    # ...and one sensor requests. The daemon never has two ticks of one sensor in flight; even so, ticks
    # evaluated at once on the same cursor ask under one run key, which the daemon finds taken.
    owner = evaluate_at_once([lambda: decision_request_sensor(dg.build_sensor_context(instance=instance))
                              for _ in range(4)])
    requests = [request for result in owner for request in result.run_requests]
    assert len(requests) == 4 and {r.run_key for r in requests} == {f"decision:{DAY}"}
    submit_like_the_sensor_daemon(daemon_context, "decision_request_sensor", requests)
    (run,) = runs_tagged(instance, DECISION_DAY_TAG, DAY)
    assert set(run.tags[TRIGGER_TAG].split("+")) == {"drift", "performance", "labels", "freshness", "schedule"}
    assert "bootstrap" in run.tags[REASON_TAG] and "new labels" in run.tags[REASON_TAG]


def test_sensors_ticked_on_the_daemons_threads_start_one_decision_run(
        daemon_context: WorkspaceProcessContext) -> None:
    """`sensors: use_threads: true`: every sensor of an iteration ticks at once on the daemon's pool."""
    instance = daemon_context.instance
    report_day_evidence(instance, DAY)
    start = time.time()
    for offset in (0, 15, 30):  # the request sensor may tick before, with or after the triggers
        threaded_daemon_tick(daemon_context, start + offset)
    (run,) = runs_tagged(instance, DECISION_DAY_TAG, DAY)
    assert run.tags["dagster/sensor_name"] == "decision_request_sensor"
    assert set(run.tags[TRIGGER_TAG].split("+")) <= {"drift", "performance", "labels", "freshness"}
