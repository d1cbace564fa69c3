"""Self-calibration (`ct tune`): search the policy's key thresholds by backtesting on a stream's own history.

Every candidate policy (one value per searched key, all combinations) replays the earlier part of the
stream as ``ct_policy``; the fixed strategies replay it once. A candidate is scored by its mean metric
over the seeds and by its compute share of ``always_retrain``'s (:func:`compute_units`). The chosen
policy has the best mean metric among the candidates within the compute budget (ties: the cheaper),
and is then replayed on the later, held-out part of the stream against the fixed strategies, so the
report says whether the choice carries over to data it was not chosen on.

>>> sorted(search_space(["labels.accumulated_trigger_batches=1,5"]).items())
[('labels.accumulated_trigger_batches', (1, 5))]
"""

from __future__ import annotations

import itertools
import math
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any

from ct_assets.core.backtest.config import BacktestConfig
from ct_assets.core.backtest.plot import pareto_front
from ct_assets.core.backtest.results import StrategyRun
from ct_assets.core.backtest.scoring import higher_is_better
from ct_assets.core.backtest.service import run_stream_backtest
from ct_assets.core.backtest.strategies import STRATEGY_NAMES
from ct_assets.core.backtest.stream import Stream
from ct_assets.core.decision.policy_config import PolicyConfig, parse_policy_config

# The default search space: dotted policy.toml keys and the values tried for each (all combinations are
# candidates, so keep it to a few keys). Adding a key is one line.
TUNED_PARAMETERS: dict[str, tuple[Any, ...]] = {
    "avoidable_loss.price_per_error": (0.004, 0.0125, 0.04),
    "avoidable_loss.noise_z": (1.0, 2.0),
    "labels.accumulated_trigger_batches": (5.0, 10.0),
}
POLICY = "ct_policy"
BASELINE = "always_retrain"
# Strategies the candidates are compared with: the fixed line-up without the policy and the online learner.
FIXED_STRATEGIES: tuple[str, ...] = tuple(name for name in STRATEGY_NAMES if name not in (POLICY, "online"))
TUNE_SHARE = 2 / 3  # the earlier share of batches tuned on; the rest is held out


@dataclass(frozen=True)
class Candidate:
    """One policy of the search: its name (``c<index>``), the searched values and the validated policy."""

    name: str
    assignment: tuple[tuple[str, Any], ...]
    policy: PolicyConfig

    def describe(self) -> str:
        return ", ".join(f"{key}={value}" for key, value in self.assignment)


@dataclass(frozen=True)
class Score:
    """A candidate or fixed strategy over the seeds: mean metric and compute as a share of always_retrain's."""

    name: str
    is_candidate: bool
    mean_metric: float
    compute_share: float
    settings: str = ""  # the candidate's searched values (empty for a fixed strategy)


@dataclass(frozen=True)
class TuningReport:
    """What `ct tune` found: scores on the tuned part, the front, the choice and its held-out figures."""

    stream_name: str
    seeds: tuple[int, ...]
    budget: float
    metric: str
    higher_is_better: bool
    tuned_batches: int
    held_out_batches: int
    scores: tuple[Score, ...]
    front: tuple[str, ...]
    chosen: Candidate | None
    held_out: tuple[Score, ...]  # the chosen policy (named ct_policy) and the fixed strategies, later part

    def score(self, name: str, held_out: bool = False) -> Score:
        for score in self.held_out if held_out else self.scores:
            if score.name == name:
                return score
        raise ValueError(f"no score named {name!r}")


def compute_units(run: StrategyRun) -> float:
    """A run's training compute in the deterministic unit the targets use (CPU seconds are noisy)."""
    return run.compute.train_gflops


def search_space(pairs: Sequence[str]) -> dict[str, tuple[Any, ...]]:
    """``key=v1,v2`` option values as a search space; values are read as TOML (``0.3``, ``20000``, ``"x"``)."""
    space: dict[str, tuple[Any, ...]] = {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        if not sep or not key.strip() or not text.strip():
            raise ValueError(f"--param takes key=v1,v2,..., got {pair!r}")
        try:
            values = tomllib.loads(f"values = [{text}]")["values"]
        except tomllib.TOMLDecodeError:
            values = [item.strip() for item in text.split(",")]  # bare words, e.g. fine_tune,escalate_to_human
        space[key.strip()] = tuple(values)
    return space


def policy_mapping(policy: PolicyConfig) -> dict[str, Any]:
    """``policy`` as the TOML document it was parsed from (tables of values; lists for tuples)."""
    raw = {name: value for name, value in asdict(policy).items() if name != "policy_version"}
    return {name: {k: list(v) if isinstance(v, tuple) else v for k, v in value.items()} if isinstance(value, dict)
            else value for name, value in raw.items()}


def candidate_policies(base: PolicyConfig, space: Mapping[str, Sequence[Any]]) -> tuple[Candidate, ...]:
    """Every combination of the space's values applied to ``base``, validated as policy files are.

    Raises ValueError for an empty space, a key that is not a policy threshold, a key without values,
    or a value the policy file would refuse (the message names the key).
    """
    if not space:
        raise ValueError("the search space is empty: give at least one --param key=v1,v2")
    raw = policy_mapping(base)
    for key, values in space.items():
        table, _, name = key.partition(".")
        if not isinstance(raw.get(table), dict) or name not in raw[table]:
            raise ValueError(f"unknown policy key {key!r} (keys are table.name, e.g. labels.accumulated_trigger_batches)")
        if not values:
            raise ValueError(f"policy key {key!r} has no candidate values")
    candidates = []
    for index, combination in enumerate(itertools.product(*space.values())):
        assignment = tuple(zip(space, combination))
        candidate_raw = {name: dict(value) if isinstance(value, dict) else value for name, value in raw.items()}
        for key, value in assignment:
            table, _, name = key.partition(".")
            candidate_raw[table][name] = value
        candidates.append(Candidate(f"c{index}", assignment, parse_policy_config(candidate_raw)))
    return tuple(candidates)


def split_stream(stream: Stream, tune_share: float, warmup_batches: int) -> tuple[Stream, Stream]:
    """The earlier ``tune_share`` of the batches, and the later part scored on the batches after them.

    The later part starts ``warmup_batches`` before the cut: its warm-up model trains on the last tuned
    batches (the past), and every batch it scores is one the tuning never saw.
    """
    cut = round(stream.n_batches * tune_share)
    if cut < warmup_batches + 1 or stream.n_batches - cut < 1:
        raise ValueError(f"stream {stream.spec.name!r} has {stream.n_batches} batches: too few to tune on "
                         f"{tune_share:.0%} of them after {warmup_batches} warm-up batches and hold out the rest")
    start = cut - warmup_batches

    def part(name: str, first: int, last: int) -> Stream:
        points = tuple(p - first for p in stream.spec.change_points if first < p < last)
        return Stream(replace(stream.spec, name=name, change_points=points), stream.batches[first:last])

    return (part(f"{stream.spec.name}[:{cut}]", 0, cut),
            part(f"{stream.spec.name}[{cut}:]", start, stream.n_batches))


def _scores(stream: Stream, config: BacktestConfig, base: PolicyConfig, candidates: Sequence[Candidate],
            seeds: Sequence[int]) -> tuple[Score, ...]:
    """Fixed strategies once and each candidate as ct_policy, per seed; means and shares over the seeds."""
    metrics: dict[str, list[float]] = {}
    units: dict[str, float] = {}

    def add(name: str, run: StrategyRun) -> None:
        metrics.setdefault(name, []).append(run.mean_metric)
        units[name] = units.get(name, 0.0) + compute_units(run)

    for seed in seeds:
        seeded = replace(config, seed=seed, include_oracle=False)
        for run in run_stream_backtest(stream, seeded, base, FIXED_STRATEGIES).runs:
            add(run.strategy, run)
        for candidate in candidates:
            add(candidate.name, run_stream_backtest(stream, seeded, candidate.policy, (POLICY,)).run(POLICY))
    if units[BASELINE] <= 0:
        raise ValueError(f"{BASELINE} trained nothing on {stream.spec.name!r}: no compute to take a share of")
    settings = {candidate.name: candidate.describe() for candidate in candidates}
    return tuple(Score(name, name in settings, float(sum(values) / len(values)), units[name] / units[BASELINE],
                       settings.get(name, "")) for name, values in metrics.items())


def front(scores: Sequence[Score], higher_is_better: bool = True) -> tuple[str, ...]:
    """Names of the non-dominated scores (compute share against mean metric; NaN metrics left out), cheapest first.

    >>> front([Score("a", True, 0.9, 0.1), Score("b", False, 0.8, 0.2), Score("c", False, 0.95, 1.0)])
    ('a', 'c')
    """
    return pareto_front({s.name: (s.compute_share, s.mean_metric) for s in scores if math.isfinite(s.mean_metric)},
                        higher_is_better)


def choose(scores: Sequence[Score], budget: float, higher_is_better: bool = True) -> Score | None:
    """The candidate with the best mean metric at a compute share within ``budget`` (ties: the cheaper); None
    when no candidate fits."""
    sign = 1.0 if higher_is_better else -1.0
    fitting = [s for s in scores if s.is_candidate and s.compute_share <= budget and math.isfinite(s.mean_metric)]
    return min(fitting, key=lambda s: (-sign * round(s.mean_metric, 9), s.compute_share), default=None)


def tune(stream: Stream, config: BacktestConfig, base: PolicyConfig,
         space: Mapping[str, Sequence[Any]] = TUNED_PARAMETERS, seeds: Sequence[int] = (0,), budget: float = 0.2,
         tune_share: float = TUNE_SHARE) -> TuningReport:
    """Search ``space`` around ``base`` on the earlier part of ``stream``; validate the choice on the rest.

    Raises ValueError for a budget outside (0, 1], no seeds, a bad space (see :func:`candidate_policies`)
    or a stream too short to split.
    """
    if not 0.0 < budget <= 1.0:
        raise ValueError(f"the compute budget is a share of {BASELINE}'s compute in (0, 1], got {budget}")
    if not seeds:
        raise ValueError("tuning needs at least one seed")
    candidates = candidate_policies(base, space)
    tuned, later = split_stream(stream, tune_share, config.warmup_batches)
    scores = _scores(tuned, config, base, candidates, seeds)
    higher = higher_is_better(config.metric)
    best = choose(scores, budget, higher)
    chosen = next((c for c in candidates if best is not None and c.name == best.name), None)
    held_out = () if chosen is None else _scores(later, config, base, (replace(chosen, name=POLICY),), seeds)
    return TuningReport(stream.spec.name, tuple(seeds), budget, config.metric, higher, tuned.n_batches,
                        later.n_batches - config.warmup_batches, scores, front(scores, higher), chosen, held_out)


def tuning_table(scores: Sequence[Score], front_names: Sequence[str], budget: float, metric: str) -> str:
    """Scores as a GitHub markdown table: candidates first (by compute share), then the fixed strategies."""
    from tabulate import tabulate

    ordered = sorted(scores, key=lambda s: (not s.is_candidate, s.compute_share, s.name))
    rows = [[s.name, s.settings or "(fixed)", f"{s.mean_metric:.4f}", f"{s.compute_share:.1%}",
             "yes" if s.name in front_names else "", "yes" if s.compute_share <= budget else ""] for s in ordered]
    return tabulate(rows, headers=["policy", "settings", f"mean {metric}", "compute vs always_retrain", "front",
                                   "in budget"], tablefmt="github")

