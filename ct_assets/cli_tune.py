"""`ct tune`: calibrate the policy on a stream's history for a compute budget, and write the policy file.

The stream options are `ct backtest`'s (``cli_backtest.add_stream_options``). Heavy imports stay inside
the functions so that `ct --help` stays fast.
"""

from __future__ import annotations

import argparse

from ct_assets.cli_backtest import add_stream_options, policy_path, stream_and_config


def add_tune_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    tune = sub.add_parser("tune", help="search the policy's key thresholds on a stream's history and write the "
                                       "best policy within a compute budget")
    add_stream_options(tune)
    tune.add_argument("--budget", type=float, default=0.2,
                      help="compute budget as a share of always_retrain's compute, in (0, 1] (default 0.2)")
    tune.add_argument("--param", action="append", default=[], metavar="KEY=V1,V2",
                      help="a policy key and the values to try, e.g. avoidable_loss.price_per_error=0.004,0.04 "
                           "(repeatable; default: the built-in search space)")
    tune.add_argument("--seeds", default="0", help="comma-separated seeds (default 0)")
    tune.add_argument("--out", default="policy.tuned.toml", help="where to write the chosen policy")
    tune.add_argument("--plot", help="PNG of the candidates and fixed strategies, front marked")
    tune.set_defaults(func=cmd_tune)
    return tune


def _seeds(text: str) -> tuple[int, ...]:
    try:
        seeds = tuple(int(item) for item in text.split(",") if item.strip())
    except ValueError:
        raise ValueError(f"--seeds takes comma-separated integers, got {text!r}") from None
    if not seeds:
        raise ValueError("--seeds needs at least one seed")
    return seeds


def cmd_tune(args: argparse.Namespace) -> int:
    """Tune, print the table, the front and the held-out check, write the policy file (and the plot)."""
    from ct_assets.core.backtest.tuned_policy import write_tuned_policy
    from ct_assets.core.backtest.tuning import TUNED_PARAMETERS, front, search_space, tune, tuning_table
    from ct_assets.core.backtest.tuning_plot import write_tuning_plot
    from ct_assets.core.decision.policy_config import load_policy_config

    seeds = _seeds(args.seeds)
    base_path = policy_path(args)
    base = load_policy_config(base_path)
    space = search_space(args.param) if args.param else TUNED_PARAMETERS
    stream, config = stream_and_config(args, seeds[0])
    report = tune(stream, config, base, space, seeds, args.budget)
    print(f"tune {report.stream_name}: {report.tuned_batches} batches tuned on, {report.held_out_batches} held out; "
          f"seeds {list(seeds)}; budget {report.budget:.0%} of always_retrain's compute\n")
    print(tuning_table(report.scores, report.front, report.budget, report.metric), "\n")
    print(f"front: {', '.join(report.front)}")
    if args.plot:
        print(f"plot {write_tuning_plot(report, args.plot)}")
    if report.chosen is None:
        cheapest = min((s for s in report.scores if s.is_candidate), key=lambda s: s.compute_share)
        raise ValueError(f"no candidate fits a budget of {report.budget:.0%}: the cheapest, {cheapest.name}, takes "
                         f"{cheapest.compute_share:.1%}; raise --budget or widen the search")
    print(f"chosen: {report.chosen.name} ({report.chosen.describe()})\n")
    print(f"held out (the last {report.held_out_batches} batches, chosen policy as ct_policy):")
    print(tuning_table(report.held_out, front(report.held_out, report.higher_is_better), report.budget, report.metric), "\n")
    path, written = write_tuned_policy(report, base_path.read_text(encoding="utf-8"), args.out)
    print(f"wrote {path} (policy_version {written.policy_version})")
    return 0
