"""Concurrency figures (issue 5, section 3) on the real `dagster-daemon` and the repo's dagster.yaml:

* analysts vs the pipeline: ``--readers`` processes check the analyst snapshot (row counts against
  its snapshot_info, one production model, deployments naming registered models) for as long as the
  shipped workspace processes ``--days`` simulated days with sensors and automation on, through
  training and promoting a first model: queries run, failed queries, torn snapshots, versions seen;
* writers: a backfill of ``--partitions`` day partitions queued by one `dagster job backfill`, once per
  executor (the multiprocess executor, a process per step, and the shipped in-process one): runs,
  DuckDB lock errors, how many runs and warehouse steps overlapped, partitions per minute.

    .venv/bin/python benchmarks/concurrency_benchmark.py [--days 8] [--rows-per-day 1500] [--readers 8]
        [--partitions 30] [--selection ingest|monitoring] [--executors multiprocess,in_process]
        [--skip-analysts] [--skip-writers]

Wall-clock figures from one run; about 25 minutes on a loaded 2-core machine with the defaults.
Exits 1 when a reader failed or saw a torn snapshot, a run failed, a lock error showed or `ct doctor`
found a problem.
"""

import argparse
import sys
import tempfile
from pathlib import Path

from ct_assets_tests.harness.scenarios import (
    AnalystsOutcome,
    WritersOutcome,
    run_analysts_scenario,
    run_writers_scenario,
)
from ct_assets_tests.harness.writers_location import (
    EXECUTORS,
    SELECTIONS,
    job_name,
)


def analysts_line(outcome: AnalystsOutcome, rows_per_day: int) -> str:
    stats = outcome.readers
    runs = sum(outcome.runs.values())
    failed_runs = f"{len(outcome.failed_runs)} failed" if outcome.failed_runs else "all succeeded"
    return (f"analysts vs pipeline: {len(outcome.days)} days x {rows_per_day} orders, {stats.readers} readers: "
            f"{stats.queries} consistency queries, {stats.failed} failed, {stats.torn} torn, "
            f"{len(stats.versions)} snapshot versions seen ({outcome.publications} published); "
            f"{runs} runs ({failed_runs}), {len(outcome.production_models)} model serving, "
            f"{len(outcome.lock_errors)} lock errors, in {outcome.elapsed_s:.0f} s; "
            f"doctor {'clean' if outcome.doctor.ok else 'FOUND PROBLEMS'}")


def writers_line(outcome: WritersOutcome, executor: str) -> str:
    succeeded = outcome.runs.get("SUCCESS", 0)
    return (f"writers, {outcome.job} ({executor} executor), {len(outcome.partitions)} partitions: "
            f"{succeeded}/{len(outcome.run_partitions)} runs succeeded, {len(outcome.lock_errors)} lock errors, "
            f"{outcome.steps} steps ({outcome.step_processes} in their own process), up to "
            f"{outcome.max_parallel_runs} runs and {outcome.max_parallel_steps} warehouse step(s) at once; "
            f"{outcome.elapsed_s:.0f} s first run start -> last run end = {outcome.partitions_per_minute:.1f} "
            f"partitions/min (queueing the backfill took {outcome.launch_s:.0f} s); "
            f"doctor {'clean' if outcome.doctor.ok else 'FOUND PROBLEMS'}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--days", type=int, default=8, help="simulated days the pipeline processes")
    parser.add_argument("--rows-per-day", type=int, default=1500,
                        help="orders per day (the first model needs 5,000 labels: 0.8 x rows x (days - 1))")
    parser.add_argument("--readers", type=int, default=8)
    parser.add_argument("--partitions", type=int, default=30, help="day partitions in the backfill")
    parser.add_argument("--backfill-rows-per-day", type=int, default=300)
    parser.add_argument("--selection", choices=sorted(SELECTIONS), default="ingest",
                        help="ingest: raw_events, labels, complaints, features; monitoring: also the three "
                             "monitoring assets (drift_report imports torch: slow per process)")
    parser.add_argument("--executors", default=",".join(EXECUTORS),
                        help=f"comma-separated, of {', '.join(EXECUTORS)}")
    parser.add_argument("--skip-analysts", action="store_true")
    parser.add_argument("--skip-writers", action="store_true")
    args = parser.parse_args()
    executors = [e.strip() for e in args.executors.split(",") if e.strip()]
    for executor in executors:
        try:
            job_name(args.selection, executor)  # an unknown executor fails now, not after minutes of work
        except ValueError as exc:
            parser.error(str(exc))

    healthy = True
    if not args.skip_analysts:
        with tempfile.TemporaryDirectory(prefix="ct-analysts-") as tmp:
            outcome = run_analysts_scenario(Path(tmp), args.days, args.rows_per_day, args.readers,
                                            deadline_s=300 + 150 * args.days)
        print(analysts_line(outcome, args.rows_per_day), flush=True)
        for example in outcome.readers.examples[:5]:
            print(f"  {example}")
        healthy &= (outcome.readers.failed == outcome.readers.torn == 0 and not outcome.failed_runs
                    and not outcome.lock_errors and outcome.doctor.ok)
    if not args.skip_writers:
        for executor in executors:
            job = job_name(args.selection, executor)
            with tempfile.TemporaryDirectory(prefix="ct-writers-") as tmp:
                outcome = run_writers_scenario(Path(tmp), args.partitions, args.backfill_rows_per_day, job,
                                               deadline_s=300 + 60 * args.partitions)
            print(writers_line(outcome, executor), flush=True)
            for problem in [*outcome.failed_runs, *outcome.lock_errors][:5]:
                print(f"  {problem}")
            healthy &= not outcome.failed_runs and not outcome.lock_errors and outcome.doctor.ok
    return 0 if healthy else 1


if __name__ == "__main__":  # the reader processes are spawned: they re-import this file
    sys.exit(main())
