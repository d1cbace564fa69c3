"""The retraining strategies a backtest compares, each deciding what to do after one batch.

A strategy sees a :class:`ReplayState` (the batch just scored, which labels are usable, the serving
model's history, and the drift/concept evidence it asked for) and returns a :class:`StrategyDecision`.
It never trains or gates anything itself: the engine does, the same way for every strategy, so the
compute accounting is uniform.

``CTPolicy`` is the live policy: :func:`policy_evidence` fills the live :class:`~ct_assets.core.decision.policy.Evidence`
from the replay state with the meaning ``core/evidence.py`` gives it from the warehouse, and the live
:func:`~ct_assets.core.decision.policy.decide` chooses. One batch of the stream plays the role of one day.

Example::

    state = ...  # built by the engine
    CTPolicy(policy=load_policy_config()).decide(state).action   # 'none' | 'fine_tune' | ...
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from typing import Protocol

from ct_assets.core.decision.policy import Decision, Evidence, compute_budget_left, decide
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
ACTIONS: tuple[str, ...] = (ACTION_NONE, ACTION_FINE_TUNE, ACTION_RETRAIN, ACTION_ESCALATE, ACTION_ONLINE)
# Policy rules that react to evidence of change; the others (staleness, label accumulation) are schedules.
DRIFT_RULES: frozenset[str] = frozenset({"drift_scope", "concept_drift", "falling_metric", "unseen_categories"})
# The live evidence reader takes the median of this many recent measured runs as a path's cost estimate.
COST_HISTORY_RUNS = 5
AUC_METRIC = "auc"  # the policy's metric thresholds are in AUC points, whatever the backtest reports
STRATEGY_NAMES: tuple[str, ...] = ("never", "periodic", "always_retrain", "always_finetune", "drift_retrain",
                                   "ct_policy", "online")


@dataclass(frozen=True)
class StepSignal:
    """What monitoring said at one step: the drift report's verdict and the concept-drift verdict."""

    batch: int
    drift_scope: str
    drift_severity: float
    concept_degraded: bool


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
        if self.action not in ACTIONS:
            raise ValueError(f"action must be one of {ACTIONS}, got {self.action!r}")


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
    """Retrain from scratch every ``every_batches`` batches (a cron schedule)."""

    every_batches: int = 7
    name: str = "periodic"
    needs_drift: bool = field(default=False, init=False)
    needs_concept: bool = field(default=False, init=False)
    gated: bool = field(default=False, init=False)

    def __post_init__(self) -> None:
        if self.every_batches < 1:
            raise ValueError(f"every_batches must be >= 1, got {self.every_batches}")

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
    """The live policy's evidence for ``state``, each field with the meaning ``core/evidence.py`` gives it.

    Drift: scope, severity, segments, drifted features and the largest unseen-category share of the
    drift report. Concept drift: detected when the verdict is ``degraded``; the metric drop is the AUC
    drop, counted only when its bootstrap interval lies wholly below zero. Labels: rows labelled since
    the serving model's window, rows labelled since the current shift started (an unbroken run of
    steps whose drift passed the policy's severity threshold or whose concept drift degraded), and
    the labelled share of the last ``recent_window_batches`` batches. Model: age in batches since its
    window ended (as days), fine-tunes since the last full retrain. Cost: the policy budget minus what
    this strategy's trainings of the last ``period_days`` steps cost, and the median of its last
    measured runs per path. No complaints stream exists here (rate at baseline), and streams carry no
    regions, so jurisdiction sign-off rules do not apply.
    """
    drift = _drift_fields(state.drift_report)
    concept = _concept_fields(state.concept_drift)
    labels = _label_fields(state, policy, recent_window_batches)
    cost = _cost_fields(state, policy)
    return Evidence(
        **drift, **concept, **labels, **cost,
        complaint_alert=False,
        complaint_rate_ratio=1.0,
        production_model_age_days=float(max(0, state.step - state.model_window[1])),
        fine_tunes_since_full_retrain=state.fine_tunes_since_full_retrain,
        risk_tier=risk_tier,
        production_model_exists=True,
        evidence_ids={"backtest_step": str(state.step), "model_window": f"{state.model_window[0]}..{state.model_window[1]}"},
    )


def _drift_fields(report: DriftReport | None) -> dict[str, object]:
    if report is None:
        raise ValueError("the policy needs the drift report in the replay state")
    return {
        "drift_scope": report.scope,
        "drift_severity_score": float(report.severity),
        "drift_severity_level": report.severity_level,
        "affected_segments": tuple(report.affected_segments),
        "drifted_features": tuple(report.drifted_features),
        "unseen_category_share": float(max(report.unseen_share.values(), default=0.0)),
    }


def _concept_fields(result: ConceptDriftResult | None) -> dict[str, object]:
    if result is None:
        raise ValueError("the policy needs the concept-drift result in the replay state")
    metric_drop = 0.0
    aucs = [shift for shift in result.metrics if shift.metric == AUC_METRIC]
    # As in the live reader: a drop counts only when its CI lies wholly below zero.
    if aucs and aucs[0].ci_high < 0:
        metric_drop = float(aucs[0].reference_value - aucs[0].current_value)
    return {"concept_drift_detected": result.concept_drift, "metric_drop": metric_drop,
            "covariate_drift_small": bool(result.covariate_drift_small)}


def _shift_start(signals: tuple[StepSignal, ...], policy: PolicyConfig) -> int | None:
    """First batch of the unbroken run of shifted steps ending with the newest signal, or None."""
    start = None
    for signal in reversed(signals):
        shifted = (signal.drift_scope != "none" and signal.drift_severity >= policy.drift.min_severity_score) \
            or signal.concept_degraded
        if not shifted or (start is not None and signal.batch != start - 1):
            break
        start = signal.batch
    return start


def _label_fields(state: ReplayState, policy: PolicyConfig, recent_window_batches: int) -> dict[str, object]:
    rows = state.rows_per_batch
    newest = state.newest_labelled_batch

    def labelled_from(first: int) -> int:
        return int(sum(rows[max(0, first):newest + 1]))

    new_labels = labelled_from(state.model_window[1] + 1)
    start = _shift_start(state.signals, policy)
    regime_rows = new_labels if start is None else labelled_from(start)
    window_first = max(0, state.step - recent_window_batches + 1)
    window_rows = sum(rows[window_first:state.step + 1])
    window_labelled = sum(rows[window_first:newest + 1])
    coverage = min(1.0, window_labelled / window_rows) if window_rows else 0.0
    return {"new_labels_since_training": new_labels, "labelled_rows_new_regime": regime_rows,
            "label_coverage_recent": float(coverage)}


def _cost_in_unit(cost: ComputeCost, policy: PolicyConfig) -> float:
    return cost.cpu_seconds if policy.cost.unit == "cpu_seconds" else cost.energy_kwh


def _cost_fields(state: ReplayState, policy: PolicyConfig) -> dict[str, object]:
    period_first = state.step - policy.cost.period_days + 1
    spent = sum(_cost_in_unit(run.cost, policy) for run in state.trainings if run.step >= period_first)
    estimates: dict[str, float | None] = {}
    for path in ("retrain", "fine_tune"):
        measured = [_cost_in_unit(run.cost, policy) for run in state.trainings if run.path == path]
        recent = measured[-COST_HISTORY_RUNS:]
        estimates[path] = float(statistics.median(recent)) if recent else None
    return {"compute_budget_left": compute_budget_left(max(0.0, spent), policy),
            "retrain_cost_estimate": estimates["retrain"], "fine_tune_cost_estimate": estimates["fine_tune"]}


def default_strategies(policy: PolicyConfig, periodic_every: int = 7,
                       names: tuple[str, ...] | None = None) -> tuple[Strategy, ...]:
    """The standard line-up (or the ``names`` chosen from it), in a fixed order.

    Names: never, periodic, always_retrain, always_finetune, drift_retrain, ct_policy, online.
    """
    lineup: dict[str, Strategy] = {
        "never": Never(),
        "periodic": Periodic(every_batches=periodic_every),
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

