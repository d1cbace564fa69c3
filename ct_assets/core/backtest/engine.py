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
through its budget rule, which with the shipped budget (3600 CPU-s per 7 days) never binds at
backtest sizes; a budget that binds makes decisions depend on timing.

Example::

    result = run_backtest(stream, BacktestConfig(label_delay=1, seed=3))
    [(run.strategy, round(run.mean_metric, 3), run.retrains) for run in result.runs]
"""

from __future__ import annotations

import hashlib
import json
import math
from collections import Counter
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd

from ct_assets.core.backtest.hindsight import HindsightReport, hindsight_report
from ct_assets.core.backtest.strategies import (
    ACTION_ONLINE,
    AlwaysRetrain,
    CTPolicy,
    ReplayState,
    StepSignal,
    Strategy,
    TrainingRun,
    default_strategies,
)
from ct_assets.core.backtest.stream import LABEL_COLUMN, Stream, StreamSpec
from ct_assets.core.backtest.targets import Recovery, time_to_recover
from ct_assets.core.data.splits import holdout_mask
from ct_assets.core.decision.policy import Decision, Evidence
from ct_assets.core.decision.policy_config import (
    ACTION_ESCALATE,
    ACTION_FINE_TUNE,
    ACTION_NONE,
    ACTION_RETRAIN,
    load_policy_config,
)
from ct_assets.core.monitoring.concept_drift import (
    ConceptDriftConfig,
    ConceptDriftResult,
    detect_concept_drift,
)
from ct_assets.core.monitoring.drift.report import DriftConfig, DriftReport, build_drift_report
from ct_assets.core.release.gates import GateResult, leakage_gate
from ct_assets.core.release.lineup import (
    GateSettings,
    HoldoutScores,
    LocalShift,
    TrainingRows,
    blocking_failures,
    candidate_gates,
    online_chain_gates,
    select_local_shift,
)
from ct_assets.core.release.metrics import roc_auc
from ct_assets.core.training.model import (
    ComputeCost,
    TrainedModel,
    TrainingConfig,
    fine_tune,
    predict_proba,
    train_from_scratch,
)
from ct_assets.core.training.online import OnlineConfig, online_update

METRICS: tuple[str, ...] = ("auc", "accuracy", "log_loss")
ORACLE = "oracle"
_LOG_LOSS_EPS = 1e-7


@dataclass(frozen=True)
class BacktestConfig:
    """How a backtest replays a stream.

    Windows are in batches: a retrain uses the labelled training rows of the last ``window_batches``
    labelled batches, a fine-tune the last ``fine_tune_window_batches`` plus a replay sample from the
    ``replay_batches`` before them. ``metric`` is what the tables report per batch (accuracy is
    always reported too). ``multivariate_drift`` is off by default: the MMD permutation test costs
    ~1 s per report, and with the default severity weights it cannot raise a medium alarm alone.
    ``seed`` overrides the seeds of training, gates, drift and concept-drift tests and salts the
    holdout split.
    """

    label_delay: int = 0
    warmup_batches: int = 2
    window_batches: int = 7
    fine_tune_window_batches: int = 1
    replay_batches: int = 4
    periodic_every: int = 7
    metric: str = "auc"
    seed: int = 0
    training: TrainingConfig = field(default_factory=lambda: TrainingConfig(device="cpu"))
    gates: GateSettings = field(default_factory=GateSettings)
    online: OnlineConfig = field(default_factory=OnlineConfig)
    concept: ConceptDriftConfig = field(default_factory=ConceptDriftConfig)
    holdout_fraction: float = 0.2
    rollback_margin: float = 0.01
    recovery_tolerance: float = 0.01
    recovery_pre_batches: int = 3
    max_reference_rows: int = 5000
    multivariate_drift: bool = False
    # Features the drift report skips, e.g. ("is_weekend",) for daily shop batches (live DriftConfig default).
    drift_excluded_features: tuple[str, ...] = ()
    # Whose holdout rows the concept-drift test compares the newest labelled batch with: "retrain_window"
    # (the window of the last full retrain in the serving model's chain, as live monitoring does: a
    # fine-tune that failed to learn a new regime then does not make its own poor level the baseline)
    # or "model_window" (the serving model's own window; a what-if).
    concept_reference: str = "retrain_window"
    include_oracle: bool = True
    hindsight_max_k: int = 10
    # Torch intra-op threads during the run (restored after); None leaves torch's setting alone. The
    # models are tiny: one thread is faster than two fighting over a busy 2-core machine (measured
    # 1.4 ms vs 17 ms per step under load).
    torch_threads: int | None = 1

    def __post_init__(self) -> None:
        if self.label_delay < 0:
            raise ValueError(f"label_delay must be >= 0, got {self.label_delay}")
        for name in ("warmup_batches", "window_batches", "fine_tune_window_batches", "periodic_every",
                     "recovery_pre_batches", "max_reference_rows", "hindsight_max_k"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.replay_batches < 0:
            raise ValueError(f"replay_batches must be >= 0, got {self.replay_batches}")
        if self.concept_reference not in ("model_window", "retrain_window"):
            raise ValueError(f"concept_reference must be 'model_window' or 'retrain_window', "
                             f"got {self.concept_reference!r}")
        if self.metric not in METRICS:
            raise ValueError(f"metric must be one of {METRICS}, got {self.metric!r}")
        if not 0.0 < self.holdout_fraction < 1.0:
            raise ValueError(f"holdout_fraction must be in (0, 1), got {self.holdout_fraction}")
        if self.rollback_margin < 0 or self.recovery_tolerance < 0:
            raise ValueError("rollback_margin and recovery_tolerance must be >= 0")
        if self.torch_threads is not None and self.torch_threads < 1:
            raise ValueError(f"torch_threads must be >= 1 or None, got {self.torch_threads}")

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (recorded with every stored run)."""
        data = {name: getattr(self, name) for name in self.__dataclass_fields__
                if name not in ("training", "gates", "online", "concept")}
        data.update(training=self.training.to_dict(), gates=asdict(self.gates), online=asdict(self.online),
                    concept=asdict(self.concept))
        return data


@dataclass(frozen=True)
class ComputeTotals:
    """Sum of a strategy's training costs. Only ``n_trainings`` takes part in equality: the rest is measured."""

    n_trainings: int
    cpu_seconds: float = field(default=0.0, compare=False)
    wall_seconds: float = field(default=0.0, compare=False)
    energy_kwh: float = field(default=0.0, compare=False)
    co2_kg: float = field(default=0.0, compare=False)

    @classmethod
    def of(cls, costs: list[ComputeCost]) -> ComputeTotals:
        return cls(len(costs), sum(c.cpu_seconds for c in costs), sum(c.wall_seconds for c in costs),
                   sum(c.energy_kwh for c in costs), sum(c.co2_kg for c in costs))


@dataclass(frozen=True)
class DailyRow:
    """One strategy on one evaluated batch. ``metric`` is None where undefined (AUC on a single class).

    ``action``: what the strategy decided after the batch; ``outcome``: what came of it (``promoted``,
    ``rejected: <gates>``, ``rolled back``, ``skipped: <why>``, ...; ``;``-separated).
    """

    strategy: str
    batch: int
    metric: float | None
    accuracy: float
    action: str
    outcome: str
    is_change_point: bool
    drift_triggered: bool


@dataclass(frozen=True)
class StrategyRun:
    """Summary of one strategy. ``is_reference``: not a real strategy (the oracle sees the labels it is
    scored on). Counts are training calls (rejected candidates included) and events."""

    strategy: str
    is_reference: bool
    mean_metric: float
    mean_accuracy: float
    retrains: int
    fine_tunes: int
    online_updates: int
    promotions: int
    gate_failures: int
    rollbacks: int
    escalations: int
    drift_triggers: int
    recovery: tuple[Recovery, ...]
    compute: ComputeTotals
    # Every training call behind ``compute``, in order (measured, so not part of equality).
    trainings: tuple[TrainingRun, ...] = field(default=(), compare=False, repr=False)


@dataclass(frozen=True)
class PolicyStep:
    """One decision of a policy strategy, with the evidence it was made on (not part of equality:
    the decision's cost estimate is measured)."""

    strategy: str
    batch: int
    evidence: Evidence
    decision: Decision


@dataclass(frozen=True)
class BacktestResult:
    """Every strategy's summary (``runs``, oracle last) and per-batch rows (``daily``) of one replay.

    Equal results (``==``) mean equal tables; measured compute and the policy's cost estimates are
    excluded from equality.
    """

    run_id: str
    stream_name: str
    label_delay: int
    seed: int
    metric: str
    higher_is_better: bool
    first_batch: int
    n_batches: int
    window_batches: int
    change_points: tuple[int, ...]
    warmup_compute: ComputeTotals
    runs: tuple[StrategyRun, ...]
    daily: tuple[DailyRow, ...]
    hindsight: HindsightReport | None
    config_json: str
    policy_steps: tuple[PolicyStep, ...] = field(default=(), compare=False, repr=False)

    def run(self, strategy: str) -> StrategyRun:
        for run in self.runs:
            if run.strategy == strategy:
                return run
        raise ValueError(f"no run named {strategy!r}; runs: {[r.strategy for r in self.runs]}")

    def daily_frame(self) -> pd.DataFrame:
        """``daily`` as a DataFrame (one row per strategy and batch)."""
        return pd.DataFrame([asdict(row) for row in self.daily])


def higher_is_better(metric: str) -> bool:
    return metric != "log_loss"


def batch_metric(metric: str, labels: np.ndarray, scores: np.ndarray) -> float | None:
    """``metric`` of ``scores`` against 0/1 ``labels``; None when undefined (AUC on a single class)."""
    if metric == "auc":
        value = roc_auc(labels, scores)
        return None if math.isnan(value) else value
    if metric == "accuracy":
        return accuracy(labels, scores)
    if metric == "log_loss":
        clipped = np.clip(scores, _LOG_LOSS_EPS, 1 - _LOG_LOSS_EPS)
        return float(-np.mean(labels * np.log(clipped) + (1 - labels) * np.log(1 - clipped)))
    raise ValueError(f"metric must be one of {METRICS}, got {metric!r}")


def accuracy(labels: np.ndarray, scores: np.ndarray) -> float:
    return float(np.mean((scores >= 0.5) == (labels == 1)))


@dataclass(frozen=True, eq=False)
class _Batches:
    """The stream split once into model inputs, labels and train/holdout rows."""

    stream: Stream
    labels: tuple[np.ndarray, ...]
    train_masks: tuple[np.ndarray, ...]

    @classmethod
    def prepare(cls, stream: Stream, fraction: float, seed: int) -> _Batches:
        labels, masks = [], []
        for index, batch in enumerate(stream.batches):
            labels.append(batch[LABEL_COLUMN].to_numpy(dtype=np.int64))
            ids = [f"{stream.spec.name}:{index}:{row}" for row in range(len(batch))]
            masks.append(~holdout_mask(ids, fraction=fraction, salt=f"backtest-{seed}"))
        return cls(stream, tuple(labels), tuple(masks))

    @property
    def spec(self) -> StreamSpec:
        return self.stream.spec

    def frame(self, batch: int) -> pd.DataFrame:
        return self.stream.batches[batch]

    def rows(self, first: int, last: int, part: str) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
        """(features, labels, batch index per row) of batches ``first..last``, ``part`` 'train' or 'holdout'."""
        frames, labels, batch_ids = [], [], []
        for b in range(max(0, first), last + 1):
            mask = self.train_masks[b] if part == "train" else ~self.train_masks[b]
            frames.append(self.frame(b).loc[mask])
            labels.append(self.labels[b][mask])
            batch_ids.append(np.full(int(mask.sum()), b))
        if not frames:
            raise ValueError(f"no batches in {first}..{last}")
        return pd.concat(frames, ignore_index=True), np.concatenate(labels), np.concatenate(batch_ids)


@dataclass(frozen=True, eq=False)
class _Serving:
    """A model a strategy may serve, with the history the policy's evidence reads."""

    model: TrainedModel
    path: str  # "initial" | "retrain" | "fine_tune" | "online"
    window: tuple[int, int]
    last_retrain_step: int
    fine_tunes_since_retrain: int
    leakage_aucs: dict[str, float] | None
    retrain_window: tuple[int, int]  # window of the last full retrain (or warm-up) in this model's chain


@dataclass(frozen=True, eq=False)
class _Reference:
    """The serving model's monitoring reference: its training rows (sampled) and its holdout rows, scored."""

    features: pd.DataFrame
    scores: np.ndarray
    holdout_labels: np.ndarray
    holdout_scores: np.ndarray


@dataclass(frozen=True, eq=False)
class _ReplayOutcome:
    run: StrategyRun
    daily: tuple[DailyRow, ...]
    policy_steps: tuple[PolicyStep, ...]
    retrained: tuple[tuple[int, TrainedModel], ...]


class _Replay:
    """One strategy's pass over the stream."""

    def __init__(self, data: _Batches, config: BacktestConfig, strategy: Strategy, initial: _Serving,
                 keep_retrained: bool) -> None:
        self.data = data
        self.config = config
        self.strategy = strategy
        self.training = replace(config.training, seed=config.seed)
        self.inputs = (*data.spec.numeric_features, *data.spec.categorical_features)
        self.serving = initial
        self.anchor = initial  # online: the last version that passed its scheduled gates
        self.updates_since_anchor = 0
        self.pending_judgement: _Serving | None = None  # the model a fresh promotion replaced
        # The warm-up model counts in the policy's cost history (as the first registered run does live)
        # but not in this strategy's compute: every strategy shares it.
        self.trainings: list[TrainingRun] = [TrainingRun(config.warmup_batches - 1, "retrain", initial.model.cost)]
        self.signals: list[StepSignal] = []
        self.counts: Counter[str] = Counter()
        self.daily: list[DailyRow] = []
        self.policy_steps: list[PolicyStep] = []
        self.keep_retrained = keep_retrained
        self.retrained: list[tuple[int, TrainedModel]] = []
        # The serving model's reference, kept for the model it belongs to (compared by identity).
        self.current_reference: tuple[TrainedModel, _Reference] | None = None
        # Scores of this step, keyed by (model, batch); TrainedModel hashes by identity.
        self.step_scores: dict[tuple[TrainedModel, int], np.ndarray] = {}
        self.drift_config = DriftConfig(
            numeric_features=data.spec.numeric_features, categorical_features=data.spec.categorical_features,
            segment_columns=data.spec.segment_columns, excluded_features=config.drift_excluded_features,
            multivariate=config.multivariate_drift, seed=config.seed)
        self.concept_config = replace(config.concept, seed=config.seed)

    # --- scoring ---------------------------------------------------------------------------------

    def scores(self, serving: _Serving | TrainedModel, batch: int) -> np.ndarray:
        model = serving.model if isinstance(serving, _Serving) else serving
        key = (model, batch)
        if key not in self.step_scores:
            self.step_scores[key] = predict_proba(model, self.data.frame(batch))
        return self.step_scores[key]

    def reference(self, serving: _Serving) -> _Reference:
        """Drift reference: the model's own training rows. Concept reference: the holdout rows of its
        chain's last full retrain (live), or of its own window (``concept_reference="model_window"``)."""
        if self.current_reference is None or self.current_reference[0] is not serving.model:
            first, last = serving.window
            features, _, _ = self.data.rows(first, last, "train")
            if len(features) > self.config.max_reference_rows:
                features = features.sample(n=self.config.max_reference_rows, random_state=self.config.seed)
                features = features.reset_index(drop=True)
            if self.config.concept_reference == "retrain_window":
                first, last = serving.retrain_window
            holdout, holdout_labels, _ = self.data.rows(first, last, "holdout")
            self.current_reference = (serving.model, _Reference(
                features, predict_proba(serving.model, features), holdout_labels,
                predict_proba(serving.model, holdout)))
        return self.current_reference[1]

    # --- the replay --------------------------------------------------------------------------------

    def run(self) -> _ReplayOutcome:
        metrics: list[float | None] = []
        accuracies: list[float] = []
        first = self.config.warmup_batches
        for step in range(first, self.data.stream.n_batches):
            self.step_scores = {}
            scores = self.scores(self.serving, step)
            labels = self.data.labels[step]
            metrics.append(batch_metric(self.config.metric, labels, scores))
            accuracies.append(accuracy(labels, scores))
            action, outcomes, triggered = self.update(step, scores)
            self.daily.append(DailyRow(self.strategy.name, step, metrics[-1], accuracies[-1], action,
                                       "; ".join(outcomes), step in self.data.spec.change_points, triggered))
        return _ReplayOutcome(self.summary(metrics, accuracies), tuple(self.daily), tuple(self.policy_steps),
                              tuple(self.retrained))

    def update(self, step: int, scores: np.ndarray) -> tuple[str, list[str], bool]:
        """After scoring ``step``: judge a fresh promotion, let the strategy decide, act. Returns
        (action, outcomes, drift-triggered)."""
        newest = step - self.config.label_delay
        if newest < self.config.warmup_batches:
            return ACTION_NONE, ["waiting for labels"], False
        outcomes: list[str] = []
        if self.pending_judgement is not None:
            self.judge_promotion(newest, outcomes)
        drift = self.drift_report(step, scores) if self.strategy.needs_drift else None
        concept = self.concept_drift(newest, drift) if self.strategy.needs_concept else None
        self.signals.append(StepSignal(step, drift.scope if drift else "none", drift.severity if drift else 0.0,
                                       bool(concept and concept.concept_drift)))
        state = ReplayState(
            step=step, newest_labelled_batch=newest,
            rows_per_batch=tuple(len(b) for b in self.data.stream.batches),
            model_path=self.serving.path, model_window=self.serving.window,
            last_retrain_step=self.serving.last_retrain_step,
            fine_tunes_since_full_retrain=self.serving.fine_tunes_since_retrain,
            signals=tuple(self.signals), trainings=tuple(self.trainings), drift_report=drift, concept_drift=concept)
        choice = self.strategy.decide(state)
        if choice.decision is not None and choice.evidence is not None:
            self.policy_steps.append(PolicyStep(self.strategy.name, step, choice.evidence, choice.decision))
        if choice.drift_triggered:
            self.counts["drift_triggers"] += 1
        if choice.action == ACTION_ESCALATE:
            self.counts["escalations"] += 1
            outcomes.append("escalated: no human answers in a backtest")
        elif choice.action in (ACTION_RETRAIN, ACTION_FINE_TUNE):
            self.train_and_promote(choice.action, step, newest, choice.evidence, outcomes)
        elif choice.action == ACTION_ONLINE:
            self.online_step(step, newest, outcomes)
        return choice.action, outcomes, choice.drift_triggered

    def drift_report(self, step: int, scores: np.ndarray) -> DriftReport:
        reference = self.reference(self.serving)
        return build_drift_report(reference.features, self.data.frame(step), self.drift_config,
                                  reference.scores, scores)

    def concept_drift(self, newest: int, drift: DriftReport | None) -> ConceptDriftResult:
        reference = self.reference(self.serving)
        return detect_concept_drift(reference.holdout_labels, reference.holdout_scores, self.data.labels[newest],
                                    self.scores(self.serving, newest), self.concept_config,
                                    covariate_severity=drift.severity if drift else None)

    def judge_promotion(self, newest: int, outcomes: list[str]) -> None:
        """Roll a fresh promotion back when the newest labelled batch shows it worse than its predecessor."""
        previous, self.pending_judgement = self.pending_judgement, None
        labels = self.data.labels[newest]
        new = batch_metric(self.config.metric, labels, self.scores(self.serving, newest))
        old = batch_metric(self.config.metric, labels, self.scores(previous, newest))
        if new is None or old is None:
            return
        sign = 1.0 if higher_is_better(self.config.metric) else -1.0
        if sign * (old - new) > self.config.rollback_margin:
            self.serving = previous
            self.counts["rollbacks"] += 1
            outcomes.append(f"rolled back: {self.config.metric} {new:.4f} < previous model's {old:.4f}")

    # --- training and gates ------------------------------------------------------------------------

    def record_training(self, step: int, path: str, model: TrainedModel) -> None:
        self.trainings.append(TrainingRun(step, path, model.cost))
        self.counts[{"retrain": "retrains", "fine_tune": "fine_tunes", "online": "online_updates"}[path]] += 1

    def train(self, action: str, step: int, newest: int) -> tuple[_Serving, pd.DataFrame, np.ndarray, np.ndarray] | None:
        spec = self.data.spec
        if action == ACTION_RETRAIN:
            first = max(0, newest - self.config.window_batches + 1)
            features, labels, batch_ids = self.data.rows(first, newest, "train")
            if len(np.unique(labels)) < 2:
                return None
            model = train_from_scratch(features[list(self.inputs)], labels, self.training,
                                       numeric_columns=spec.numeric_features,
                                       categorical_columns=spec.categorical_features)
            self.record_training(step, "retrain", model)
            if self.keep_retrained:
                self.retrained.append((step, model))
            serving = _Serving(model, "retrain", (first, newest), step, 0, None, (first, newest))
            return serving, features, labels, batch_ids
        first = max(0, newest - self.config.fine_tune_window_batches + 1)
        features, labels, batch_ids = self.data.rows(first, newest, "train")
        replay_first = max(0, first - self.config.replay_batches)
        replay_features = replay_labels = None
        if replay_first < first:
            replay_features, replay_labels, _ = self.data.rows(replay_first, first - 1, "train")
            replay_features = replay_features[list(self.inputs)]
        model = fine_tune(self.serving.model, features[list(self.inputs)], labels, replay_features, replay_labels,
                          self.training)
        self.record_training(step, "fine_tune", model)
        serving = _Serving(model, "fine_tune", (first, newest), self.serving.last_retrain_step,
                           self.serving.fine_tunes_since_retrain + 1, None, self.serving.retrain_window)
        return serving, features, labels, batch_ids

    def train_and_promote(self, action: str, step: int, newest: int, evidence: Evidence | None,
                          outcomes: list[str]) -> None:
        trained = self.train(action, step, newest)
        if trained is None:
            outcomes.append("skipped: the training window has a single class")
            return
        candidate, features, labels, batch_ids = trained
        if self.strategy.gated:
            gates = self.gates(candidate, newest, features, labels, batch_ids, evidence)
            failed = blocking_failures(gates)
            if failed:
                self.counts["gate_failures"] += 1
                outcomes.append("rejected: " + ", ".join(g.name for g in failed))
                if candidate.path == "fine_tune":
                    # As live (core/evidence.py): rejected fine-tunes count towards technical debt.
                    self.serving = replace(self.serving,
                                           fine_tunes_since_retrain=self.serving.fine_tunes_since_retrain + 1)
                return
            leakage = [g for g in gates if g.name == "leakage"]
            aucs = leakage[0].metrics.get("single_feature_auc") if leakage else None
            candidate = replace(candidate, leakage_aucs=aucs)
            self.pending_judgement = self.serving
        self.serving = candidate
        self.counts["promotions"] += 1
        outcomes.append("promoted")

    def gates(self, candidate: _Serving, newest: int, features: pd.DataFrame, labels: np.ndarray,
              batch_ids: np.ndarray, evidence: Evidence | None) -> list[GateResult]:
        """The live gates on the holdout rows of the candidate's training window, as ``evaluate_candidate``
        applies them (a single batch's holdout is too small for a 1 % margin to clear its noise)."""
        spec = self.data.spec
        first = min(candidate.window[0], newest)
        holdout, y, _ = self.data.rows(first, newest, "holdout")
        if len(np.unique(y)) < 2:
            return [GateResult("holdout", False, "error", {"n": len(y)}, {},
                               f"holdout of batches {first}..{newest} has a single class: cannot judge the candidate")]
        scores = HoldoutScores(y, predict_proba(candidate.model, holdout), predict_proba(self.serving.model, holdout),
                               None if spec.protected_column is None else holdout[spec.protected_column].to_numpy())
        training = TrainingRows(features, labels, batch_ids, spec.numeric_features, self.serving.leakage_aucs)
        return candidate_gates(scores, replace(self.config.gates, seed=self.config.seed), training=training,
                               local_shift=self.local_shift_rows(candidate, holdout, evidence), guarded=True)

    def local_shift_rows(self, candidate: _Serving, holdout: pd.DataFrame,
                         evidence: Evidence | None) -> LocalShift | None:
        """The holdout rows of the local shift behind a fine-tune, as the live evaluation selects them."""
        if evidence is None:
            return None
        return select_local_shift(holdout, candidate.path, evidence.drift_scope, evidence.affected_segments)

    # --- online mode --------------------------------------------------------------------------------

    def online_step(self, step: int, newest: int, outcomes: list[str]) -> None:
        """One online update from the newest labelled batch; every ``gate_every_updates`` updates the chain
        is judged against its anchor (as ``core/online.py`` does live) and restored to it on failure."""
        online = self.config.online
        features, labels, _ = self.data.rows(newest, newest, "train")
        if len(labels) < online.min_batch_rows or len(np.unique(labels)) < 2:
            outcomes.append(f"skipped: {len(labels)} labelled training rows (need {online.min_batch_rows}, "
                            "both classes)")
            return
        model = online_update(self.serving.model, features[list(self.inputs)], labels, self.training, online)
        self.record_training(step, "online", model)
        self.serving = replace(self.serving, model=model, path="online", window=(newest, newest))
        self.updates_since_anchor += 1
        if self.updates_since_anchor % online.gate_every_updates:
            outcomes.append(f"updated ({self.updates_since_anchor} since the last gated version)")
            return
        gates = self.online_gates(newest)
        failed = blocking_failures(gates)
        self.updates_since_anchor = 0
        if failed:
            self.serving = self.anchor
            self.counts["gate_failures"] += 1
            self.counts["rollbacks"] += 1
            outcomes.append("rolled back to the last gated version: " + ", ".join(g.name for g in failed))
            return
        self.anchor = self.serving
        outcomes.append("updated; chain passed its scheduled gates")

    def online_gates(self, newest: int) -> list[GateResult]:
        online, spec = self.config.online, self.data.spec
        holdout, y, _ = self.data.rows(newest - online.gate_window_days + 1, newest, "holdout")
        scores = HoldoutScores(y, predict_proba(self.serving.model, holdout), predict_proba(self.anchor.model, holdout),
                               None if spec.protected_column is None else holdout[spec.protected_column].to_numpy())
        return online_chain_gates(scores, self.config.gates, online.tolerance,
                                  scope="recent labelled holdout rows vs the last gated version", guarded=True)

    # --- summary ------------------------------------------------------------------------------------

    def summary(self, metrics: list[float | None], accuracies: list[float]) -> StrategyRun:
        return _summarise(self.strategy.name, False, metrics, accuracies, self.counts,
                          tuple(self.trainings[1:]), self.config, self.data)


def _summarise(name: str, is_reference: bool, metrics: list[float | None], accuracies: list[float],
               counts: Counter[str], trainings: tuple[TrainingRun, ...], config: BacktestConfig,
               data: _Batches) -> StrategyRun:
    defined = [m for m in metrics if m is not None]
    recovery = time_to_recover(metrics, config.warmup_batches, data.spec.change_points,
                               config.recovery_pre_batches, config.recovery_tolerance, higher_is_better(config.metric))
    return StrategyRun(
        strategy=name, is_reference=is_reference,
        mean_metric=float(np.mean(defined)) if defined else float("nan"),
        mean_accuracy=float(np.mean(accuracies)),
        retrains=counts["retrains"], fine_tunes=counts["fine_tunes"], online_updates=counts["online_updates"],
        promotions=counts["promotions"], gate_failures=counts["gate_failures"], rollbacks=counts["rollbacks"],
        escalations=counts["escalations"], drift_triggers=counts["drift_triggers"], recovery=recovery,
        compute=ComputeTotals.of([run.cost for run in trainings]), trainings=trainings)


def _oracle(data: _Batches, config: BacktestConfig) -> tuple[StrategyRun, tuple[DailyRow, ...]]:
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
    return _summarise(ORACLE, True, metrics, accuracies, counts, tuple(trainings), config, data), tuple(daily)


def _initial_model(data: _Batches, config: BacktestConfig) -> _Serving:
    spec = data.spec
    last = config.warmup_batches - 1
    features, labels, batch_ids = data.rows(0, last, "train")
    if len(np.unique(labels)) < 2:
        raise ValueError(f"stream {spec.name!r}: the warm-up batches 0..{last} hold a single class")
    model = train_from_scratch(features[[*spec.numeric_features, *spec.categorical_features]], labels,
                               replace(config.training, seed=config.seed), numeric_columns=spec.numeric_features,
                               categorical_columns=spec.categorical_features)
    aucs = None
    if spec.numeric_features:  # the reference of the first leakage gate, as the bootstrap model's gate records it
        aucs = leakage_gate(features, labels, columns=spec.numeric_features,
                            batches=batch_ids).metrics["single_feature_auc"]
    return _Serving(model, "initial", (0, last), last, 0, aucs, (0, last))


def _hindsight(data: _Batches, config: BacktestConfig, initial: _Serving,
               retrained: tuple[tuple[int, TrainedModel], ...], policy: StrategyRun | None) -> HindsightReport | None:
    """Hindsight-best schedules over the always-retrain models (row r: the model serving from batch first + r)."""
    first, n = config.warmup_batches, data.stream.n_batches
    size = n - first
    matrix = np.full((size, size), np.nan)

    def fill(row: int, model: TrainedModel) -> bool:
        for column in range(row, size):
            batch = first + column
            value = batch_metric(config.metric, data.labels[batch], predict_proba(model, data.frame(batch)))
            if value is None:
                return False
            matrix[row, column] = value
        return True

    if not fill(0, initial.model):
        return None  # a batch without a defined metric: no schedule can be scored
    for step, model in retrained:
        if step - first + 1 < size:
            fill(step - first + 1, model)
    policy_mean = None if policy is None else policy.mean_metric
    policy_updates = 0 if policy is None else policy.promotions - policy.rollbacks
    cost = float(np.mean([m.cost.cpu_seconds for _, m in retrained])) if retrained else 0.0
    return hindsight_report(matrix, first, policy_mean, policy_updates, config.hindsight_max_k,
                            higher_is_better(config.metric), cost)


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
        strategies = default_strategies(load_policy_config(), config.periodic_every)
    names = [s.name for s in strategies]
    if not names or len(set(names)) != len(names) or ORACLE in names:
        raise ValueError(f"strategies need distinct names other than {ORACLE!r}, got {names}")
    if config.warmup_batches >= stream.n_batches:
        raise ValueError(f"stream {stream.spec.name!r} has {stream.n_batches} batches: nothing left after "
                         f"{config.warmup_batches} warm-up batches")
    data = _Batches.prepare(stream, config.holdout_fraction, config.seed)
    initial = _initial_model(data, config)
    outcomes = {s.name: _Replay(data, config, s, initial, isinstance(s, AlwaysRetrain)).run() for s in strategies}
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
        config_json=config_json,
        policy_steps=tuple(step for outcome in outcomes.values() for step in outcome.policy_steps))
