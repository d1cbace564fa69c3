"""Prequential (test-then-train) replay of a stream through every strategy, with uniform accounting.

For each strategy, batch by batch from ``warmup_batches`` on:

1. the serving model scores batch ``t`` first (the per-batch metric and accuracy);
2. the labels of batch ``t - label_delay`` become usable (earlier batches' labels already are);
3. a promoted model awaiting judgement is compared with the one it replaced on that newest labelled
   batch and rolled back when worse by more than ``rollback_margin`` (gated strategies);
4. the strategy decides from a :class:`~ct_assets.core.backtest.strategies.ReplayState`;
5. the engine trains with the live functions (``train_from_scratch`` on the trailing window,
   ``fine_tune`` with replay of older rows, ``online_update``), gates candidates of gated strategies
   with the live gates, and promotes; the new model serves from batch ``t + 1``.

The first ``warmup_batches`` train one initial model that every strategy starts from. Every batch is
split once into training rows and holdout rows (``splits.holdout_mask`` on ``<stream>:<batch>:<row>``):
no strategy ever trains on holdout rows, and gates judge on them. Compute is the sum of the
:class:`~ct_assets.core.training.model.ComputeCost` of every training call a strategy made (the initial
shared warm-up model excluded, rejected candidates included); the warm-up model's cost is reported
once as ``warmup_compute`` (it is the same for every strategy, and as the process's first training it
also carries torch's one-time start-up).

Determinism: under a seed the tables are identical run to run; the measured compute (seconds,
energy, CO2) is excluded from equality (``compare=False``). The policy sees measured costs only
through its budget rule, which with the shipped budget (8,000 GFLOPs per 7 days) never binds at
backtest sizes; a budget that binds makes decisions depend on timing.

Example::

    result = run_backtest(stream, BacktestConfig(label_delay=1, seed=3))
    [(run.strategy, round(run.mean_metric, 3), run.retrains) for run in result.runs]
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections import Counter
from dataclasses import replace
from typing import Any

import numpy as np
import pandas as pd

from ct_assets.core.backtest.accounting import summarise_run
from ct_assets.core.backtest.batches import Batches
from ct_assets.core.backtest.config import BacktestConfig
from ct_assets.core.backtest.hindsight import HindsightReport, hindsight_report
from ct_assets.core.backtest.replay import Replay
from ct_assets.core.backtest.results import BacktestResult, ComputeTotals, DailyRow, StrategyRun
from ct_assets.core.backtest.scoring import accuracy, batch_metric, higher_is_better
from ct_assets.core.backtest.serving import Serving, initial_model
from ct_assets.core.backtest.strategies import (
    AlwaysRetrain,
    CTPolicy,
    Strategy,
    TrainingRun,
    default_strategies,
)
from ct_assets.core.backtest.stream import Stream
from ct_assets.core.decision.policy_config import ACTION_RETRAIN, load_policy_config
from ct_assets.core.training.model import TrainedModel, predict_proba, train_from_scratch

ORACLE = "oracle"
# Below this spread of its scores on the warm-up holdout rows, the warm-up model counts as constant.
CONSTANT_SCORE_STD = 0.01
logger = logging.getLogger(__name__)


def _oracle(data: Batches, config: BacktestConfig) -> tuple[StrategyRun, tuple[DailyRow, ...]]:
    """Upper reference, not a strategy: each batch scored by a model trained on that batch's own labels.

    It gets as many gradient steps as a retrain on the full window (``epochs * window_batches`` passes
    over its one batch), so it is not merely underfitted.
    """
    spec = data.spec
    training = replace(config.training, seed=config.seed, epochs=config.training.epochs * config.window_batches)
    inputs = [*spec.numeric_features, *spec.categorical_features]
    metrics: list[float | None] = []
    accuracies: list[float] = []
    trainings: list[TrainingRun] = []
    daily = []
    for step in range(config.warmup_batches, data.stream.n_batches):
        frame, labels = data.frame(step), data.labels[step]
        if len(np.unique(labels)) < 2:
            scores = np.full(len(labels), float(labels.mean()))
        else:
            model = train_from_scratch(frame[inputs], labels, training, numeric_columns=spec.numeric_features,
                                       categorical_columns=spec.categorical_features)
            trainings.append(TrainingRun(step, "retrain", model.cost))
            scores = predict_proba(model, frame)
        metrics.append(batch_metric(config.metric, labels, scores))
        accuracies.append(accuracy(labels, scores))
        daily.append(DailyRow(ORACLE, step, metrics[-1], accuracies[-1], ACTION_RETRAIN,
                              "reference: trained on the labels it is scored on", step in spec.change_points, False))
    counts: Counter[str] = Counter(retrains=len(trainings))
    return summarise_run(ORACLE, True, metrics, accuracies, counts, tuple(trainings), config, data), tuple(daily)


def _hindsight(data: Batches, config: BacktestConfig, initial: Serving,
               retrained: tuple[tuple[int, TrainedModel], ...], policy: StrategyRun | None) -> HindsightReport | None:
    """Hindsight-best schedules over the always-retrain models (row r: the model serving from batch first + r)."""
    first, n = config.warmup_batches, data.stream.n_batches
    size = n - first
    matrix = np.full((size, size), np.nan)

    def fill(row: int, model: TrainedModel) -> None:
        # A batch without a defined metric (AUC on a single class) stays NaN for every model: skipped.
        for column in range(row, size):
            batch = first + column
            value = batch_metric(config.metric, data.labels[batch], predict_proba(model, data.frame(batch)))
            matrix[row, column] = np.nan if value is None else value

    fill(0, initial.model)
    if not np.isfinite(matrix[0]).any():
        return None  # no batch has a defined metric: no schedule can be scored
    for step, model in retrained:
        if step - first + 1 < size:
            fill(step - first + 1, model)
    policy_mean = None if policy is None else policy.mean_metric
    policy_updates = 0 if policy is None else policy.promotions - policy.rollbacks
    costs = ComputeTotals.of([m.cost for _, m in retrained])
    count = max(1, costs.n_trainings)
    return hindsight_report(matrix, first, policy_mean, policy_updates, config.hindsight_max_k,
                            higher_is_better(config.metric), costs.train_gflops / count, costs.cpu_seconds / count)


def warmup_notes(data: Batches, config: BacktestConfig, initial: Serving) -> tuple[str, ...]:
    """A warning when the shared warm-up model is constant on its holdout rows (one predicted class, or
    scores that barely vary): every strategy starts from it, so early batches measure little."""
    holdout, _, _ = data.rows(0, config.warmup_batches - 1, "holdout")
    if holdout.empty:
        return ()
    scores = predict_proba(initial.model, holdout)
    classes = np.unique(scores >= 0.5)
    if len(classes) > 1 and float(scores.std()) >= CONSTANT_SCORE_STD:
        return ()
    verdict = f"predicts only class {int(classes[0])}" if len(classes) == 1 else "scores barely vary"
    return (f"the warm-up model is constant: it {verdict} on its {len(scores)} holdout rows (score std "
            f"{float(scores.std()):.4f}, {initial.model.n_steps} optimizer steps); give it more steps "
            f"(TrainingConfig.min_steps) or more warm-up batches",)


def _strategy_description(strategy: Strategy) -> dict[str, Any]:
    described: dict[str, Any] = {"name": strategy.name, "kind": type(strategy).__name__}
    for name in getattr(strategy, "__dataclass_fields__", {}):
        value = getattr(strategy, name)
        described[name] = value.policy_version if name == "policy" else value
    return described


def _run_id(stream: Stream, config_json: str) -> str:
    digest = hashlib.sha256(config_json.encode())
    for batch in stream.batches:
        digest.update(pd.util.hash_pandas_object(batch, index=False).to_numpy().tobytes())
    return digest.hexdigest()[:16]


def run_backtest(stream: Stream, config: BacktestConfig | None = None,
                 strategies: tuple[Strategy, ...] | None = None) -> BacktestResult:
    """Replay ``stream`` through every strategy (default: the standard line-up with the shipped policy)
    and the oracle; see the module docstring for the protocol.

    ``run_id`` is a hash of the stream's contents and the configuration: the same inputs give the same
    id, so storing a re-run replaces its rows.
    """
    config = config or BacktestConfig()
    if config.torch_threads is None:
        return _run(stream, config, strategies)
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(config.torch_threads)
    try:
        return _run(stream, config, strategies)
    finally:
        torch.set_num_threads(before)


def _run(stream: Stream, config: BacktestConfig, strategies: tuple[Strategy, ...] | None) -> BacktestResult:
    if strategies is None:
        strategies = default_strategies(load_policy_config())
    names = [s.name for s in strategies]
    if not names or len(set(names)) != len(names) or ORACLE in names:
        raise ValueError(f"strategies need distinct names other than {ORACLE!r}, got {names}")
    if config.warmup_batches >= stream.n_batches:
        raise ValueError(f"stream {stream.spec.name!r} has {stream.n_batches} batches: nothing left after "
                         f"{config.warmup_batches} warm-up batches")
    data = Batches.prepare(stream, config.holdout_fraction, config.seed)
    initial = initial_model(data, config)
    notes = warmup_notes(data, config, initial)
    for note in notes:
        logger.warning("backtest of %s: %s", stream.spec.name, note)
    outcomes = {s.name: Replay(data, config, s, initial, isinstance(s, AlwaysRetrain)).run() for s in strategies}
    runs = [outcome.run for outcome in outcomes.values()]
    daily = [row for outcome in outcomes.values() for row in outcome.daily]
    if config.include_oracle:
        oracle_run, oracle_daily = _oracle(data, config)
        runs.append(oracle_run)
        daily.extend(oracle_daily)
    always = next((outcomes[s.name] for s in strategies if isinstance(s, AlwaysRetrain)), None)
    policy = next((outcomes[s.name].run for s in strategies if isinstance(s, CTPolicy)), None)
    hindsight = None if always is None else _hindsight(data, config, initial, always.retrained, policy)
    config_json = json.dumps({"config": config.to_dict(), "strategies": [_strategy_description(s) for s in strategies],
                              "stream": {"name": stream.spec.name, "n_batches": stream.n_batches,
                                         "change_points": list(stream.spec.change_points)}},
                             sort_keys=True, default=str)
    return BacktestResult(
        run_id=_run_id(stream, config_json), stream_name=stream.spec.name, label_delay=config.label_delay,
        seed=config.seed, metric=config.metric, higher_is_better=higher_is_better(config.metric),
        first_batch=config.warmup_batches, n_batches=stream.n_batches, window_batches=config.window_batches,
        change_points=stream.spec.change_points, warmup_compute=ComputeTotals.of([initial.model.cost]),
        runs=tuple(runs), daily=tuple(daily), hindsight=hindsight,
        config_json=config_json, notes=notes,
        policy_steps=tuple(step for outcome in outcomes.values() for step in outcome.policy_steps))
