"""One strategy's prequential pass over a stream: score, judge a fresh promotion, decide, train, gate.

See :mod:`ct_assets.core.backtest.engine` for the protocol. Training, gates, drift and concept-drift
tests are the live functions; the strategy only decides.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from ct_assets.core.backtest.accounting import summarise_run
from ct_assets.core.backtest.batches import Batches
from ct_assets.core.backtest.config import BacktestConfig
from ct_assets.core.backtest.human import HumanResponse, OpenEscalation
from ct_assets.core.backtest.results import DailyRow, PolicyStep, StrategyRun
from ct_assets.core.backtest.scoring import accuracy, batch_metric, higher_is_better
from ct_assets.core.backtest.serving import Reference, Serving, fit_candidate, monitoring_reference
from ct_assets.core.backtest.strategies import (
    ACTION_ONLINE,
    CTPolicy,
    ReplayState,
    StepSignal,
    Strategy,
    StrategyDecision,
    TrainingRun,
    batch_error,
)
from ct_assets.core.decision.evidence_rules import BatchError, is_shifted, shift_start
from ct_assets.core.decision.policy import Evidence
from ct_assets.core.decision.policy_config import (
    ACTION_ESCALATE,
    ACTION_FINE_TUNE,
    ACTION_NONE,
    ACTION_RETRAIN,
)
from ct_assets.core.monitoring.concept_drift import ConceptDriftResult, detect_concept_drift
from ct_assets.core.monitoring.drift.report import build_drift_report
from ct_assets.core.monitoring.drift.types import DriftConfig, DriftReport
from ct_assets.core.release.gates import GateResult
from ct_assets.core.release.lineup import (
    HoldoutScores,
    LocalShift,
    TrainingRows,
    blocking_failures,
    candidate_gates,
    newest_holdout_rows,
    online_chain_gates,
    regime_start,
    select_local_shift,
    serving_degraded,
    spread_evenly,
)
from ct_assets.core.training.model import TrainedModel, predict_proba
from ct_assets.core.training.online import online_update


@dataclass(frozen=True, eq=False)
class ReplayOutcome:
    run: StrategyRun
    daily: tuple[DailyRow, ...]
    policy_steps: tuple[PolicyStep, ...]
    retrained: tuple[tuple[int, TrainedModel], ...]


class Replay:
    """One strategy's pass over the stream."""

    def __init__(self, data: Batches, config: BacktestConfig, strategy: Strategy, initial: Serving,
                 keep_retrained: bool) -> None:
        self.data = data
        self.config = config
        self.strategy = strategy
        self.training = replace(config.training, seed=config.seed)
        self.inputs = (*data.spec.numeric_features, *data.spec.categorical_features)
        self.serving = initial
        self.anchor = initial  # online: the last version that passed its scheduled gates
        self.updates_since_anchor = 0
        self.pending_judgement: Serving | None = None  # the model a fresh promotion replaced
        self.rejection: tuple[int, str] | None = None  # (step, path) of a candidate rejected since the update
        self.human = HumanResponse.parse(config.human)
        self.open_escalation: OpenEscalation | None = None
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
        self.current_reference: tuple[TrainedModel, Reference] | None = None
        # Scores of this step, keyed by (model, batch); TrainedModel hashes by identity.
        self.step_scores: dict[tuple[TrainedModel, int], np.ndarray] = {}
        self.drift_config = DriftConfig(
            numeric_features=data.spec.numeric_features, categorical_features=data.spec.categorical_features,
            segment_columns=data.spec.segment_columns, excluded_features=config.drift_excluded_features,
            multivariate=config.multivariate_drift, seed=config.seed)
        self.concept_config = replace(config.concept, seed=config.seed)

    # --- scoring ---------------------------------------------------------------------------------

    def scores(self, serving: Serving | TrainedModel, batch: int) -> np.ndarray:
        model = serving.model if isinstance(serving, Serving) else serving
        key = (model, batch)
        if key not in self.step_scores:
            self.step_scores[key] = predict_proba(model, self.data.frame(batch))
        return self.step_scores[key]

    def reference(self, serving: Serving) -> Reference:
        """The serving model's monitoring reference, computed once per model."""
        if self.current_reference is None or self.current_reference[0] is not serving.model:
            self.current_reference = (serving.model, monitoring_reference(self.data, self.config, serving))
        return self.current_reference[1]

    def run(self) -> ReplayOutcome:
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
        return ReplayOutcome(self.summary(metrics, accuracies), tuple(self.daily), tuple(self.policy_steps),
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
                                       bool(concept and concept.concept_drift), self.batch_error(newest)))
        state = ReplayState(
            step=step, newest_labelled_batch=newest,
            rows_per_batch=tuple(len(b) for b in self.data.stream.batches),
            model_path=self.serving.path, model_window=self.serving.window,
            last_retrain_step=self.serving.last_retrain_step,
            fine_tunes_since_full_retrain=self.serving.fine_tunes_since_retrain,
            signals=tuple(self.signals), trainings=tuple(self.trainings), rejection=self.rejection,
            drift_report=drift, concept_drift=concept)
        choice = self.strategy.decide(state)
        if choice.decision is not None and choice.evidence is not None:
            self.policy_steps.append(PolicyStep(self.strategy.name, step, choice.evidence, choice.decision))
        if choice.drift_triggered:
            self.counts["drift_triggers"] += 1
        if choice.action == ACTION_ESCALATE:
            self.escalate(step, choice, outcomes)
        elif choice.action in (ACTION_RETRAIN, ACTION_FINE_TUNE):
            first = choice.decision.training_window_start if choice.decision is not None else None
            self.train_and_promote(choice.action, step, newest, choice.evidence, outcomes, first)
        elif choice.action == ACTION_ONLINE:
            self.online_step(step, newest, outcomes)
        self.answer_escalation(step, newest, choice.action, outcomes)
        return choice.action, outcomes, choice.drift_triggered

    # --- escalations ----------------------------------------------------------------------------------

    def escalate(self, step: int, choice: StrategyDecision, outcomes: list[str]) -> None:
        """Count the escalation and put its recommended action to the modelled human (core/backtest/human.py)."""
        self.counts["escalations"] += 1
        if self.human.approve_after is None:
            outcomes.append("escalated; no answer")
            return
        if self.open_escalation is not None:
            outcomes.append(f"escalated; the escalation of batch {self.open_escalation.asked_at} is still open")
            return
        action = ACTION_NONE if choice.decision is None else choice.decision.wanted_action
        if action not in (ACTION_RETRAIN, ACTION_FINE_TUNE):
            outcomes.append(f"escalated; nothing to approve (recommended: {action})")
            return
        self.open_escalation = OpenEscalation(step, action, choice.evidence)
        if self.human.approve_after:
            outcomes.append(f"escalated; {action} awaits approval ({self.human.approve_after} batches)")

    def answer_escalation(self, step: int, newest: int, action: str, outcomes: list[str]) -> None:
        """Carry out the open escalation's action once the human approves; an update the strategy made on its
        own since supersedes the question."""
        question, wait = self.open_escalation, self.human.approve_after
        if question is None or wait is None:
            return
        if action in (ACTION_RETRAIN, ACTION_FINE_TUNE, ACTION_ONLINE):
            self.open_escalation = None
            outcomes.append(f"the escalation of batch {question.asked_at} is superseded by this update")
            return
        waited = step - question.asked_at
        if waited < wait:
            return
        self.open_escalation = None
        self.counts["escalations_approved"] += 1
        outcomes.append(f"escalated; approved after {waited} batches: {question.action}")
        self.train_and_promote(question.action, step, newest, question.evidence, outcomes)

    def drift_report(self, step: int, scores: np.ndarray) -> DriftReport:
        reference = self.reference(self.serving)
        return build_drift_report(reference.features, self.data.frame(step), self.drift_config,
                                  reference.scores, scores)

    def concept_drift(self, newest: int, drift: DriftReport | None) -> ConceptDriftResult:
        reference = self.reference(self.serving)
        return detect_concept_drift(reference.holdout_labels, reference.holdout_scores, self.data.labels[newest],
                                    self.scores(self.serving, newest), self.concept_config,
                                    covariate_severity=drift.severity if drift else None)

    def batch_error(self, newest: int) -> BatchError | None:
        """The serving model's error on the newest labelled batch next to its reference (policy strategies)."""
        if not self.strategy.needs_concept:
            return None
        reference = self.reference(self.serving)
        return batch_error(newest, self.data.labels[newest], self.scores(self.serving, newest),
                           reference.holdout_labels, reference.holdout_scores, self.concept_config.decision_threshold)

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

    def train(self, action: str, step: int, newest: int,
              first: int | None = None) -> tuple[Serving, pd.DataFrame, np.ndarray, np.ndarray] | None:
        trained = fit_candidate(self.data, self.config, self.training, self.serving, action, step, newest, first)
        if trained is not None:
            candidate = trained[0]
            self.record_training(step, candidate.path, candidate.model)
            if self.keep_retrained and candidate.path == "retrain":
                self.retrained.append((step, candidate.model))
        return trained

    def train_and_promote(self, action: str, step: int, newest: int, evidence: Evidence | None,
                          outcomes: list[str], first: int | None = None) -> None:
        """Train, gate and promote; a retrain's window starts at ``first`` (the decision's regime window)."""
        trained = self.train(action, step, newest, first)
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
                self.rejection = (step, candidate.path)
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
        self.rejection = None
        self.counts["promotions"] += 1
        outcomes.append("promoted")

    def gates(self, candidate: Serving, newest: int, features: pd.DataFrame, labels: np.ndarray,
              batch_ids: np.ndarray, evidence: Evidence | None) -> list[GateResult]:
        """The live gates, as ``evaluate_candidate`` applies them: on the newest regime's holdout rows
        within a retrain window (since the shift the monitoring signals show, else the newest batches)
        and on the long-term holdout rows of every batch so far."""
        spec, settings = self.data.spec, replace(self.config.gates, seed=self.config.seed)
        first = min(candidate.window[0], max(0, newest - self.config.window_batches + 1))
        pool, pool_labels, pool_batches = self.data.rows(first, newest, "holdout")
        decided = None if evidence is None else evidence.regime_window_start
        newest_rows = newest_holdout_rows(pool_batches, pool_labels, regime_start(decided, self.shift_start()),
                                          settings)
        holdout = pool.loc[newest_rows.rows].reset_index(drop=True)
        y = pool_labels[newest_rows.rows]
        if len(np.unique(y)) < 2:
            return [GateResult("holdout", False, "error", {"n": len(y)}, {},
                               f"holdout of batches {first}..{newest} has a single class: cannot judge the candidate")]
        long_term, long_term_y, _ = self.data.rows(0, newest, "long_term")
        kept = spread_evenly(len(long_term_y), settings.long_term_max_rows)
        training = TrainingRows(features, labels, batch_ids, spec.numeric_features, self.serving.leakage_aucs,
                                None if evidence is None else evidence.drifted_features,
                                evidence is not None and serving_degraded(evidence.concept_drift_detected,
                                                                          evidence.avoidable_errors))
        return candidate_gates(
            self.holdout_scores(candidate, holdout, y, newest_rows.describe("batches")), settings,
            training=training, local_shift=self.local_shift_rows(candidate, holdout, evidence),
            long_term=self.holdout_scores(candidate, long_term.iloc[kept], long_term_y[kept],
                                          f"long-term holdout rows of batches 0..{newest}"),
            shift_detected=newest_rows.since_shift,
            population=self.holdout_scores(candidate, pool, pool_labels, f"holdout rows of batches {first}..{newest}"),
            guarded=True)

    def holdout_scores(self, candidate: Serving, rows: pd.DataFrame, labels: np.ndarray,
                       described: str) -> HoldoutScores:
        protected = self.data.spec.protected_column
        return HoldoutScores(labels, predict_proba(candidate.model, rows), predict_proba(self.serving.model, rows),
                             None if protected is None else rows[protected].to_numpy(), described)

    def shift_start(self) -> int | None:
        """First batch of the shift ongoing now by the monitoring signals, as the policy's evidence counts
        it (None: no shift, or a strategy without the policy's notion of one)."""
        if not isinstance(self.strategy, CTPolicy):
            return None
        shifted = {signal.batch for signal in self.signals if is_shifted(
            signal.drift_scope, signal.drift_severity, signal.concept_degraded, self.strategy.policy)}
        return shift_start(shifted, self.signals[-1].batch) if self.signals else None

    def local_shift_rows(self, candidate: Serving, holdout: pd.DataFrame,
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
        return summarise_run(self.strategy.name, False, metrics, accuracies, self.counts,
                          tuple(self.trainings[1:]), self.config, self.data)
