"""The retraining strategies a backtest compares, each deciding what to do after one batch.

A strategy sees a :class:`ReplayState` (the batch just scored, which labels are usable, the serving
model's history, and the drift/concept evidence it asked for) and returns a :class:`StrategyDecision`.
It never trains or gates anything itself: the engine does, the same way for every strategy, so the
compute accounting is uniform.

``CTPolicy`` is the live policy: :func:`policy_evidence` gathers the replay state's inputs and hands them to
the live evidence rules (:func:`~ct_assets.core.decision.evidence_rules.build_evidence`, which the warehouse
reader ``core/decision/evidence.py`` calls too), and the live :func:`~ct_assets.core.decision.policy.decide`
chooses. One batch of the stream plays the role of one day.

Example::

    state = ...  # built by the engine
    CTPolicy(policy=load_policy_config()).decide(state).action   # 'none' | 'fine_tune' | ...
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from ct_assets.core.decision import evidence_rules
from ct_assets.core.decision.policy import Decision, Evidence, decide
from ct_assets.core.decision.policy_config import (
    ACTION_ESCALATE,
    ACTION_FINE_TUNE,
    ACTION_NONE,
    ACTION_RETRAIN,
    PolicyConfig,
)
from ct_assets.core.monitoring.concept_drift import ConceptDriftResult
from ct_assets.core.monitoring.drift.types import DriftReport
from ct_assets.core.training.cost import ComputeCost

ACTION_ONLINE = "online_update"
# What a strategy may choose for a batch: the policy's actions and the online update.
STRATEGY_ACTIONS: tuple[str, ...] = (ACTION_NONE, ACTION_FINE_TUNE, ACTION_RETRAIN, ACTION_ESCALATE,
                                     ACTION_ONLINE)
# Policy rules that react to evidence of change; the others (staleness, label accumulation) are schedules.
DRIFT_RULES: frozenset[str] = frozenset({"drift_scope", "concept_drift", "falling_metric", "unseen_categories"})
# The cron baselines: retrain every 3, 7 and 14 batches.
PERIODIC_BATCHES: tuple[int, ...] = (3, 7, 14)
STRATEGY_NAMES: tuple[str, ...] = ("never", *(f"periodic_{every}" for every in PERIODIC_BATCHES), "always_retrain",
                                   "always_finetune", "drift_retrain", "ct_policy", "online")


@dataclass(frozen=True)
class StepSignal:
    """What monitoring said at one step: the drift report's verdict and the concept-drift verdict, and the
    serving model's error on the newest labelled batch next to its reference (None: no concept test)."""

    batch: int
    drift_scope: str
    drift_severity: float
    concept_degraded: bool
    error: evidence_rules.BatchError | None = None


@dataclass(frozen=True)
class TrainingRun:
    """One training call of this strategy's replay: at which step, which path, what it cost."""

    step: int
    path: str  # "retrain" | "fine_tune" | "online"
    cost: ComputeCost


@dataclass(frozen=True, eq=False)
class ReplayState:
    """Everything a strategy may look at after scoring batch ``step``.

    Labels of batches ``<= newest_labelled_batch`` are usable (``step - label_delay``); the serving
    model trained on batches ``model_window[0]..model_window[1]``. ``drift_report`` and
    ``concept_drift`` are filled only for strategies that ask for them: the drift report compares
    batch ``step``'s features with the serving model's training rows, the concept-drift test the
    serving model on the newest labelled batch with its own holdout rows. ``signals`` hold the
    monitoring verdicts of every step so far (this one last), ``trainings`` every training call.
    """

    step: int
    newest_labelled_batch: int
    rows_per_batch: tuple[int, ...]
    model_path: str  # "initial" | "retrain" | "fine_tune" | "online"
    model_window: tuple[int, int]
    last_retrain_step: int
    fine_tunes_since_full_retrain: int
    signals: tuple[StepSignal, ...] = ()
    trainings: tuple[TrainingRun, ...] = ()
    rejection: tuple[int, str] | None = None  # (step, path) of the newest candidate rejected since the update
    drift_report: DriftReport | None = None
    concept_drift: ConceptDriftResult | None = None

    def __post_init__(self) -> None:
        if not 0 <= self.newest_labelled_batch <= self.step < len(self.rows_per_batch):
            raise ValueError(f"need 0 <= newest_labelled_batch ({self.newest_labelled_batch}) <= step "
                             f"({self.step}) < number of batches ({len(self.rows_per_batch)})")
        if not 0 <= self.model_window[0] <= self.model_window[1] < self.newest_labelled_batch + 1:
            raise ValueError(f"model window {self.model_window} must lie within the labelled batches "
                             f"0..{self.newest_labelled_batch}")


@dataclass(frozen=True)
class StrategyDecision:
    """A strategy's choice for one batch; ``decision``/``evidence`` are set by the policy strategy."""

    action: str
    drift_triggered: bool = False
    detail: str = ""
    decision: Decision | None = None
    evidence: Evidence | None = None

    def __post_init__(self) -> None:
        if self.action not in STRATEGY_ACTIONS:
            raise ValueError(f"action must be one of {STRATEGY_ACTIONS}, got {self.action!r}")


class Strategy(Protocol):
    """A named rule deciding the action for a batch. ``gated``: the engine gates its candidates
    (and may roll a promotion back); ``needs_drift`` / ``needs_concept``: the engine computes that
    evidence into the state (it costs a drift report / a bootstrap per batch)."""

    name: str
    needs_drift: bool
    needs_concept: bool
    gated: bool

    def decide(self, state: ReplayState) -> StrategyDecision: ...


@dataclass(frozen=True)
class Never:
    """Train once (the shared warm-up model) and never again."""

    name: str = "never"
    needs_drift: bool = field(default=False, init=False)
    needs_concept: bool = field(default=False, init=False)
    gated: bool = field(default=False, init=False)

    def decide(self, state: ReplayState) -> StrategyDecision:
        return StrategyDecision(ACTION_NONE)


@dataclass(frozen=True)
class Periodic:
    """Retrain from scratch every ``every_batches`` batches (a cron schedule), named ``periodic_<every_batches>``."""

    every_batches: int = 7
    name: str = field(default="", init=False)
    needs_drift: bool = field(default=False, init=False)
    needs_concept: bool = field(default=False, init=False)
    gated: bool = field(default=False, init=False)

    def __post_init__(self) -> None:
        if self.every_batches < 1:
            raise ValueError(f"every_batches must be >= 1, got {self.every_batches}")
        object.__setattr__(self, "name", f"periodic_{self.every_batches}")

    def decide(self, state: ReplayState) -> StrategyDecision:
        due = state.step - state.last_retrain_step >= self.every_batches
        return StrategyDecision(ACTION_RETRAIN if due else ACTION_NONE,
                                detail=f"every {self.every_batches} batches" if due else "")


@dataclass(frozen=True)
class AlwaysRetrain:
    """Retrain from scratch after every newly labelled batch."""

    name: str = "always_retrain"
    needs_drift: bool = field(default=False, init=False)
    needs_concept: bool = field(default=False, init=False)
    gated: bool = field(default=False, init=False)

    def decide(self, state: ReplayState) -> StrategyDecision:
        return StrategyDecision(ACTION_RETRAIN)


@dataclass(frozen=True)
class AlwaysFineTune:
    """Fine-tune the serving model after every newly labelled batch."""

    name: str = "always_finetune"
    needs_drift: bool = field(default=False, init=False)
    needs_concept: bool = field(default=False, init=False)
    gated: bool = field(default=False, init=False)

    def decide(self, state: ReplayState) -> StrategyDecision:
        return StrategyDecision(ACTION_FINE_TUNE)


@dataclass(frozen=True)
class DriftRetrain:
    """Retrain whenever any per-feature drift test fires: what most platforms do.

    A test fires when its raw (uncorrected) p-value is below ``alpha``, with no effect-size floor,
    as in a typical per-feature KS / chi-squared monitor; the whole-batch tests of the drift report
    are used.
    """

    alpha: float = 0.05
    name: str = "drift_retrain"
    needs_drift: bool = field(default=True, init=False)
    needs_concept: bool = field(default=False, init=False)
    gated: bool = field(default=False, init=False)

    def __post_init__(self) -> None:
        if not 0.0 < self.alpha < 1.0:
            raise ValueError(f"alpha must be in (0, 1), got {self.alpha}")

    def decide(self, state: ReplayState) -> StrategyDecision:
        if state.drift_report is None:
            raise ValueError("drift_retrain needs the drift report in the replay state")
        fired = sorted(r.feature for r in state.drift_report.feature_results if r.p_value < self.alpha)
        if not fired:
            return StrategyDecision(ACTION_NONE)
        return StrategyDecision(ACTION_RETRAIN, drift_triggered=True,
                                detail=f"p < {self.alpha}: {', '.join(fired)}")


@dataclass(frozen=True)
class CTPolicy:
    """The live decision policy (:func:`ct_assets.core.decision.policy.decide`) on evidence from the replay.

    ``recent_window_batches`` is the window whose label coverage says whether labels are
    representative (the live reader's ``recent_window_days``).
    """

    policy: PolicyConfig
    risk_tier: str = "low"
    recent_window_batches: int = 7
    name: str = "ct_policy"
    needs_drift: bool = field(default=True, init=False)
    needs_concept: bool = field(default=True, init=False)
    gated: bool = field(default=True, init=False)

    def __post_init__(self) -> None:
        if self.recent_window_batches < 1:
            raise ValueError(f"recent_window_batches must be >= 1, got {self.recent_window_batches}")

    def decide(self, state: ReplayState) -> StrategyDecision:
        evidence = policy_evidence(state, self.policy, self.risk_tier, self.recent_window_batches)
        decision = decide(evidence, self.policy)
        triggered = decision.action != ACTION_NONE and bool(DRIFT_RULES & set(decision.fired_rules))
        return StrategyDecision(decision.action, drift_triggered=triggered,
                                detail=",".join(decision.fired_rules), decision=decision, evidence=evidence)


@dataclass(frozen=True)
class Online:
    """Update the serving model in place from every newly labelled batch (the engine gates the chain
    on the schedule of the engine's ``OnlineConfig``)."""

    name: str = "online"
    needs_drift: bool = field(default=False, init=False)
    needs_concept: bool = field(default=False, init=False)
    gated: bool = field(default=False, init=False)

    def decide(self, state: ReplayState) -> StrategyDecision:
        return StrategyDecision(ACTION_ONLINE)


def policy_evidence(state: ReplayState, policy: PolicyConfig, risk_tier: str = "low",
                    recent_window_batches: int = 7) -> Evidence:
    """The live policy's evidence for ``state``: the replay's inputs to the live evidence rules.

    Drift and concept drift: the state's drift report and concept-drift result. Labels: rows of the
    labelled batches after the serving model's window, since the current shift started (over the
    steps' monitoring signals), and of the last ``recent_window_batches`` batches; the median batch is the
    typical one. Errors: the serving model's error per labelled batch after its window, from the steps'
    concept-drift tests, and the newest rejection since its update. Model: batches
    since its window ended (as days), fine-tunes since the last full retrain. Cost: what this
    strategy's trainings of the last ``period_days`` steps cost, and its measured runs per path. No
    complaints stream exists here (rate at baseline), and streams carry no regions, so jurisdiction
    sign-off rules do not apply.
    """
    production = evidence_rules.ProductionSummary(
        age_days=evidence_rules.model_age(state.step, state.model_window[1]),
        fine_tunes_since_full_retrain=state.fine_tunes_since_full_retrain)
    ids = {"backtest_step": str(state.step), "model_window": f"{state.model_window[0]}..{state.model_window[1]}"}
    return evidence_rules.build_evidence(
        policy, drift=_drift_summary(state.drift_report), concept=_concept_summary(state.concept_drift),
        labels=_label_counts(state, policy, recent_window_batches), production=production,
        cost=_cost_history(state, policy), errors=_error_history(state),
        inputs=evidence_rules.PolicyInputs(risk_tier=risk_tier, evidence_ids=ids))


def batch_error(newest: int, labels: np.ndarray, scores: np.ndarray, reference_labels: np.ndarray,
                reference_scores: np.ndarray, threshold: float) -> evidence_rules.BatchError | None:
    """The serving model's error rate on labelled batch ``newest`` next to its error rate on its reference
    holdout rows, both at the decision ``threshold`` (None when either side has no rows)."""
    if len(labels) == 0 or len(reference_labels) == 0:
        return None
    error = float(np.mean((scores >= threshold) != labels))
    reference = float(np.mean((reference_scores >= threshold) != reference_labels))
    return evidence_rules.BatchError(newest, len(labels), error, reference)


def _drift_summary(report: DriftReport | None) -> evidence_rules.DriftSummary:
    if report is None:
        raise ValueError("the policy needs the drift report in the replay state")
    return evidence_rules.DriftSummary(report.scope, report.severity, report.severity_level,
                                       tuple(report.affected_segments), tuple(report.drifted_features),
                                       max(report.unseen_share.values(), default=0.0))


def _concept_summary(result: ConceptDriftResult | None) -> evidence_rules.ConceptSummary:
    if result is None:
        raise ValueError("the policy needs the concept-drift result in the replay state")
    aucs = [evidence_rules.MetricChange(shift.reference_value, shift.current_value, shift.ci_high)
            for shift in result.metrics if shift.metric == evidence_rules.AUC_METRIC]
    return evidence_rules.ConceptSummary(degraded=result.concept_drift,
                                         covariate_drift_small=bool(result.covariate_drift_small),
                                         auc=aucs[0] if aucs else None)


def _label_counts(state: ReplayState, policy: PolicyConfig, recent_window_batches: int) -> evidence_rules.LabelCounts:
    rows = state.rows_per_batch
    newest = state.newest_labelled_batch

    def labelled_from(first: int) -> int:
        return int(sum(rows[max(0, first):newest + 1]))

    shifted = {signal.batch for signal in state.signals if evidence_rules.is_shifted(
        signal.drift_scope, signal.drift_severity, signal.concept_degraded, policy)}
    start = evidence_rules.shift_start(shifted, state.step)
    window_first = max(0, state.step - recent_window_batches + 1)
    return evidence_rules.LabelCounts(since_training=labelled_from(state.model_window[1] + 1),
                                      since_shift_start=None if start is None else labelled_from(start),
                                      recent_labelled=int(sum(rows[window_first:newest + 1])),
                                      recent_orders=int(sum(rows[window_first:state.step + 1])),
                                      typical_batch_rows=int(statistics.median(rows[:newest + 1])),
                                      newest_period=newest, shift_start_period=start)


def _error_history(state: ReplayState) -> evidence_rules.ErrorHistory:
    """The serving model's error on each labelled batch after its window, and the newest rejection."""
    batches = tuple(signal.error for signal in state.signals
                    if signal.error is not None and signal.error.period > state.model_window[1])
    if state.rejection is None:
        return evidence_rules.ErrorHistory(batches, measured=True)
    step, path = state.rejection
    rejected_period = step - (state.step - state.newest_labelled_batch)
    since = int(sum(state.rows_per_batch[rejected_period + 1:state.newest_labelled_batch + 1]))
    return evidence_rules.ErrorHistory(batches, True, path, rejected_period, since)


def _cost_in_unit(cost: ComputeCost, policy: PolicyConfig) -> float:
    if policy.cost.unit == "train_gflops":
        if cost.train_gflops is None:
            raise ValueError("a backtest training run lacks its deterministic counts")
        return cost.train_gflops
    return cost.cpu_seconds if policy.cost.unit == "cpu_seconds" else cost.energy_kwh


def _cost_history(state: ReplayState, policy: PolicyConfig) -> evidence_rules.CostHistory:
    """Spent in the budget period, and every measured run per path, newest first."""
    period_first = state.step - policy.cost.period_days + 1
    newest_first = state.trainings[::-1]

    def costs(path: str) -> tuple[float, ...]:
        return tuple(_cost_in_unit(run.cost, policy) for run in newest_first if run.path == path)

    spent = sum(_cost_in_unit(run.cost, policy) for run in state.trainings if run.step >= period_first)
    return evidence_rules.CostHistory(spent, costs("retrain"), costs("fine_tune"))


def default_strategies(policy: PolicyConfig, names: tuple[str, ...] | None = None) -> tuple[Strategy, ...]:
    """The standard line-up (or the ``names`` chosen from it), in a fixed order.

    Names: never, periodic_3, periodic_7, periodic_14, always_retrain, always_finetune, drift_retrain,
    ct_policy, online.
    """
    periodic = [Periodic(every_batches=every) for every in PERIODIC_BATCHES]
    lineup: dict[str, Strategy] = {
        "never": Never(),
        **{strategy.name: strategy for strategy in periodic},
        "always_retrain": AlwaysRetrain(),
        "always_finetune": AlwaysFineTune(),
        "drift_retrain": DriftRetrain(),
        "ct_policy": CTPolicy(policy=policy),
        "online": Online(),
    }
    names = STRATEGY_NAMES if names is None else names
    unknown = [name for name in names if name not in lineup]
    if unknown:
        raise ValueError(f"unknown strategies {unknown}; choose from {list(lineup)}")
    return tuple(lineup[name] for name in names)

