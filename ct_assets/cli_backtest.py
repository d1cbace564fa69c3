"""`ct backtest`'s arguments and run: a built-in stream by name, or a team's own history file.

`ct_assets.cli` stores the result (it owns the warehouse connection); this module parses the options,
runs the shared backtest service and prints what it did. Heavy imports stay inside the functions so
that `ct --help` stays fast.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ct_assets.core.backtest.config import BacktestConfig
    from ct_assets.core.backtest.results import BacktestResult
    from ct_assets.core.backtest.stream import Stream

# The options of `ct backtest --file`, in one place: the parser adds them and refuses them without --file.
FILE_OPTIONS: tuple[tuple[str, str, dict[str, object]], ...] = (
    ("--timestamp-column", "the column of row times (batches are cut by it)", {}),
    ("--label-column", "the column of outcomes", {}),
    ("--positive-label", ("the label value that counts as 1 (all others 0); needed unless the label is 0/1 or "
                          "true/false"), {}),
    ("--batch-by", "one batch per day (default), ISO week, month, or every N rows",
     {"nargs": "+", "metavar": "day|week|month|rows N"}),
    ("--numeric", "comma-separated numeric features (default: detected)", {}),
    ("--categorical", "comma-separated categorical features (default: detected)", {}),
    ("--protected", "the fairness gate's group column (never a model input)", {}),
    ("--segments", "comma-separated columns drift localisation splits by", {}),
    ("--change-at", "when known changes began (dates or times); recovery and false triggers are measured from them",
     {"metavar": "TIME[,TIME]"}),
    ("--warmup-batches", "batches that train the first model (default 2)", {"type": int}),
)


def add_stream_options(parser: argparse.ArgumentParser) -> None:
    """The options naming the stream to replay, shared by `ct backtest` and `ct tune`."""
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--stream", help="a built-in stream (default simulator): simulator | sea_abrupt | "
                                         "sea_gradual | hyperplane_* | stagger_* | agrawal_* | employment_ma")
    source.add_argument("--file", help="your own history: a CSV or Parquet file of timestamped, labelled rows")
    parser.add_argument("--label-delay", type=int, default=0, help="batches until a batch's labels arrive")
    parser.add_argument("--quick", action="store_true", help="a small version of the built-in stream")
    parser.add_argument("--policy", help="policy file to test (default: ct_assets/policy.toml)")
    file_options = parser.add_argument_group("with --file")
    for flag, text, options in FILE_OPTIONS:
        file_options.add_argument(flag, help=text, **options)  # type: ignore[arg-type]


def add_backtest_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    backtest = sub.add_parser("backtest", help="replay a stream (built-in or your own file) through every "
                                                "retraining strategy")
    add_stream_options(backtest)
    backtest.add_argument("--strategies", default="",
                          help="comma-separated subset of never,periodic_3,periodic_7,periodic_14,always_retrain,"
                               "always_finetune,drift_retrain,ct_policy,online (default: all)")
    backtest.add_argument("--seed", type=int, default=0)
    backtest.add_argument("--db", help="DuckDB file for the results (default: the live warehouse)")
    return backtest


def _names(text: str | None) -> tuple[str, ...] | None:
    """A comma-separated option as names; None when the option was not given."""
    return None if text is None else tuple(name.strip() for name in text.split(",") if name.strip())


def _batching(words: Sequence[str]) -> tuple[str, int | None]:
    """``--batch-by day|week|month`` or ``--batch-by rows N`` as (batch_by, batch_rows)."""
    if len(words) == 2 and words[0] == "rows" and words[1].isdigit():
        return "rows", int(words[1])
    if len(words) == 1 and words[0] in ("day", "week", "month"):
        return words[0], None
    raise ValueError(f"--batch-by takes day, week, month or 'rows N', got {' '.join(words)!r}")


def _file_stream(args: argparse.Namespace, seed: int) -> tuple[Stream, BacktestConfig]:
    """The --file stream and its settings; prints which columns are inputs and why the others are not."""
    from ct_assets.core.backtest.service import prepare_file

    if not (args.timestamp_column and args.label_column):
        raise ValueError("--file needs --timestamp-column and --label-column")
    if args.quick:
        raise ValueError("--quick shrinks built-in streams only; give a smaller file instead")
    batch_by, batch_rows = _batching(args.batch_by or ["day"])
    try:
        stream, config, roles = prepare_file(
            Path(args.file), timestamp_column=args.timestamp_column, label_column=args.label_column,
            positive_label=args.positive_label, batch_by=batch_by, batch_rows=batch_rows,
            numeric=_names(args.numeric), categorical=_names(args.categorical), protected_column=args.protected,
            segment_columns=_names(args.segments) or (), change_times=_names(args.change_at) or (), seed=seed,
            label_delay=args.label_delay, warmup_batches=2 if args.warmup_batches is None else args.warmup_batches)
    except FileNotFoundError as exc:
        raise ValueError(str(exc)) from None
    print(f"{args.file}: {stream.spec.description}\n{roles.describe()}\n")
    return stream, config


def stream_and_config(args: argparse.Namespace, seed: int) -> tuple[Stream, BacktestConfig]:
    """The stream the options name (``--file`` or ``--stream``) and its settings under ``seed``.

    Raises ValueError for any bad option or input.
    """
    from ct_assets.core.backtest.catalog import prepare

    if args.file:
        return _file_stream(args, seed)
    given = [flag for flag, _, _ in FILE_OPTIONS if getattr(args, flag[2:].replace("-", "_")) is not None]
    if given:
        raise ValueError(f"{', '.join(given)} only apply to --file (built-in streams keep their settings)")
    return prepare(args.stream or "simulator", quick=args.quick, seed=seed, label_delay=args.label_delay)


def policy_path(args: argparse.Namespace) -> Path:
    """The policy file the options name (``--policy``), or the shipped one."""
    from ct_assets.core.decision.policy_config import DEFAULT_POLICY_PATH

    return Path(args.policy) if args.policy else DEFAULT_POLICY_PATH


def run_and_print(args: argparse.Namespace) -> BacktestResult:
    """Run the backtest the options name and print its summary table and target checks.

    Raises ValueError for any bad option or input (the CLI turns it into exit code 2).
    """
    from ct_assets.core.backtest.catalog import strategy_table
    from ct_assets.core.backtest.service import run_stream_backtest, target_checks
    from ct_assets.core.decision.policy_config import load_policy_config

    stream, config = stream_and_config(args, args.seed)
    result = run_stream_backtest(stream, config, load_policy_config(policy_path(args)), _names(args.strategies) or ())
    print(f"backtest {result.run_id}: {result.stream_name}, label delay {result.label_delay}, "
          f"{result.n_batches} batches, change points {list(result.change_points)}\n")
    print(strategy_table(result), "\n")
    for check in target_checks(result):
        value = "n/a" if check.value is None else f"{check.value:.4g}"
        print(f"{'met ' if check.met else 'MISS'} {check.target}: {value} (threshold {check.threshold:g}) {check.detail}")
    return result
