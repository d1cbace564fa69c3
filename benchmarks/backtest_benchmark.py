"""Backtest every retraining strategy on the simulator, the literature's generators and real census data.

    .venv/bin/python benchmarks/backtest_benchmark.py [--quick] [--out data/backtest] [--seed 0]
                                                      [--streams simulator,sea_abrupt,...] [--delays 0,1]
                                                      [--concept-reference model_window|retrain_window]

For every stream and label delay (0 and 1 batch) it prints the strategy table, the hindsight-best
schedules and the issue's target checks, writes one PNG per run under ``--out`` and stores the runs in
``<out>/backtest.duckdb`` (tables ``backtest_runs``, ``backtest_daily``).

Sizes (full run, ~10 minutes on a 2-core machine):

* simulator: the mixed timeline (``simulator_stream.MIXED_TIMELINE``), 60 days x 2000 orders;
* synthetic: SEA, rotating hyperplane, STAGGER, Agrawal, abrupt and gradual (width 4), 40 batches x 1000
  rows, changes at batches 10, 20, 30;
* real: ACS employment Massachusetts 2015-2018, batches of 2000 people, the first 10 batches of each
  year (40 batches; the year boundaries are the change points).

Training: the live MLP (32, 16), 5 epochs (live: 8) at batch size 256 on CPU with one torch thread; a
fine-tune is bounded to a fifth of a retrain's steps (``fine_tune_max_steps``), about the live ratio
(14-day retrain window at 8 epochs vs 150 fine-tune steps). Windows: retrain on the last 7 labelled
batches, fine-tune on the newest one plus replay from the 4 before; periodic every 3, 7 and 14 batches; two
warm-up batches. The policy is the shipped ``ct_assets/policy.toml`` unchanged, at risk tier low.
``--quick`` shrinks every stream (a smoke test, a few minutes; too small for the policy's label thresholds).
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace
from pathlib import Path

import duckdb
from tabulate import tabulate

from ct_assets.core.backtest.catalog import (
    strategy_table,
    stream_cases,
    training_config,
)
from ct_assets.core.backtest.config import BacktestConfig
from ct_assets.core.backtest.engine import run_backtest
from ct_assets.core.backtest.plot import write_backtest_plot
from ct_assets.core.backtest.results import BacktestResult
from ct_assets.core.backtest.store import write_backtest
from ct_assets.core.backtest.stream import Stream
from ct_assets.core.backtest.targets import TargetCheck, check_targets

ROOT = Path(__file__).resolve().parent.parent


def hindsight_table(result: BacktestResult) -> str:
    report = result.hindsight
    if report is None:
        return "(no hindsight: always_retrain not run or no batch with a defined metric)"
    rows = [[s.k, " ".join(str(report.first_batch + b - 1) for b in s.switch_batches), f"{s.mean_metric:.4f}",
             f"{s.k * report.retrain_train_gflops:.3f}", f"{s.k * report.retrain_cpu_seconds:.2f}"]
            for s in report.schedules]
    table = tabulate(rows, headers=["k", "retrain after batches", f"mean {result.metric}", "GFLOPs (k retrains)",
                                    "cpu s (k retrains)"], tablefmt="github")
    if report.skipped_batches:
        table += f"\nskipped (metric undefined): batches {', '.join(map(str, report.skipped_batches))}"
    gap_k = "n/a" if report.gap_at_policy_k is None else f"{report.gap_at_policy_k:+.4f}"
    gap_best = "n/a" if report.gap_to_best is None else f"{report.gap_to_best:+.4f}"
    return (f"{table}\nct_policy: mean {report.policy_mean:.4f} with {report.policy_updates} model changes; "
            f"hindsight-best with as many retrains is better by {gap_k}, best over k by {gap_best}")


def target_table(checks: tuple[TargetCheck, ...]) -> str:
    rows = [[c.target, "n/a" if c.value is None else f"{c.value:.4g}", f"{c.threshold:g}", "yes" if c.met else "NO",
             c.detail] for c in checks]
    return tabulate(rows, headers=["target", "value", "threshold", "met", "detail"], tablefmt="github")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small streams (a smoke test)")
    parser.add_argument("--out", type=Path, default=ROOT / "data" / "backtest")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--streams", default="", help="comma-separated subset of the stream names")
    parser.add_argument("--delays", default="0,1", help="comma-separated label delays in batches")
    parser.add_argument("--concept-reference", default="retrain_window", choices=("model_window", "retrain_window"),
                        help="the concept-drift reference of a fine-tuned model (live: retrain_window)")
    args = parser.parse_args()

    started = time.perf_counter()
    cases = stream_cases(args.quick, args.seed)
    if args.streams:
        wanted = args.streams.split(",")
        unknown = sorted(set(wanted) - {case.name for case in cases})
        if unknown:
            parser.error(f"unknown streams {unknown}; choose from {[case.name for case in cases]}")
        cases = [case for case in cases if case.name in wanted]
    delays = [int(value) for value in args.delays.split(",")]
    args.out.mkdir(parents=True, exist_ok=True)
    all_checks: list[TargetCheck] = []
    timings: list[tuple[str, int, float]] = []
    with duckdb.connect(str(args.out / "backtest.duckdb")) as con:
        for case in cases:
            built = case.build()
            # The benchmark's case name (e.g. sea_gradual) names the stream in tables, plots and DuckDB.
            stream = Stream(replace(built.spec, name=case.name), built.batches)
            base = BacktestConfig(seed=args.seed, drift_excluded_features=case.drift_excluded_features,
                                  concept_reference=args.concept_reference)
            base = replace(base, training=training_config(stream, base.window_batches))
            for delay in delays:
                run_started = time.perf_counter()
                result = run_backtest(stream, replace(base, label_delay=delay))
                seconds = time.perf_counter() - run_started
                timings.append((case.name, delay, seconds))
                checks = check_targets(result)
                all_checks.extend(checks)
                write_backtest(con, result)
                plot = write_backtest_plot(result, args.out / f"{case.name}-delay{delay}.png")
                print(f"\n## {case.name}, label delay {delay} ({stream.n_batches} batches, "
                      f"{sum(len(b) for b in stream.batches)} rows, change points {list(stream.spec.change_points)}; "
                      f"{seconds:.0f} s; run {result.run_id}; {plot.relative_to(ROOT) if plot.is_relative_to(ROOT) else plot})")
                print(f"{stream.spec.description}\n")
                print(strategy_table(result), end="\n\n")
                print(hindsight_table(result), end="\n\n")
                print(target_table(checks))
                sys.stdout.flush()

    print("\n## Targets over all runs (ct_policy)\n")
    targets = sorted({c.target for c in all_checks})
    rows = []
    for target in targets:
        these = [c for c in all_checks if c.target == target]
        missed = [f"{c.stream}/d{c.label_delay}" for c in these if not c.met]
        rows.append([target, f"{len(these) - len(missed)}/{len(these)}", ", ".join(missed) or "-"])
    print(tabulate(rows, headers=["target", "met", "missed on"], tablefmt="github"))
    print("\n" + tabulate([[name, delay, f"{seconds:.0f}"] for name, delay, seconds in timings],
                          headers=["stream", "delay", "seconds"], tablefmt="github"))
    print(f"\ntotal {time.perf_counter() - started:.0f} s; results in {args.out / 'backtest.duckdb'}")


if __name__ == "__main__":
    main()
