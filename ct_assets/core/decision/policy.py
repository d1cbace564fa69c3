"""The retrain-vs-fine-tune decision: a pure, explainable policy over drift, label, cost and risk evidence.

``decide(evidence, config)`` returns one of ``none | fine_tune | retrain | escalate_to_human`` with the
plain-language reason of every rule that fired. Each criterion is a named rule (a small ``rule_*``
function); every threshold comes from ``ct_assets/policy.toml`` (see ``core/decision/policy_config.py``).

Combination order
-----------------
1. **Bootstrap.** With no production model there is nothing to fine-tune or compare against: only
   ``bootstrap`` (-> retrain) fires, then steps 3-7 apply (labels judged by row count only).
2. **Evidence rules** each ask for an action; the strongest one wins (none < fine_tune < retrain):
   ``drift_scope``, ``concept_drift``, ``falling_metric``, ``rising_complaints``, ``unseen_categories``,
   ``label_accumulation``, ``staleness``, ``architecture_change``, ``high_risk_proactive_retrain``.
3. ``rapid_rollback``: when quick recovery is needed, a wanted retrain becomes a fine-tune if a
   fine-tune may stand in for it (see below); with nothing else wanted it asks for an update itself.
4. ``technical_debt``: after K consecutive fine-tunes (or too much fine-tune divergence) an update is
   a retrain, however local the shift.
5. Labels: ``labels_plentiful`` confirms a retrain; ``labels_scarce`` turns a retrain without enough
   representative labels into a fine-tune or an escalation (config), and an update without even the
   fine-tune minimum into an escalation (strong evidence) or nothing (wait for labels).
6. ``compute_budget``: a retrain over budget becomes a fine-tune when one may stand in for it and fits,
   otherwise an escalation; a fine-tune over budget escalates.
7. ``human_approval``: high risk tier or an affected sign-off region makes promotion wait for a human.

A fine-tune may stand in for a retrain unless: there is no production model, the architecture must
change, the technical-debt bound is reached, or the high risk tier sees global/concept evidence.

Example
-------
>>> from ct_assets.core.decision.policy_config import load_policy_config
>>> evidence = Evidence(
...     drift_scope="local", drift_severity_score=0.45, drift_severity_level="medium",
...     affected_segments=("region=south",), drifted_features=("price", "discount"),
...     unseen_category_share=0.0, concept_drift_detected=False, metric_drop=0.0,
...     covariate_drift_small=False, complaint_alert=False, complaint_rate_ratio=1.0,
...     new_labels_since_training=3000, label_coverage_recent=0.7, labelled_rows_new_regime=3000,
...     production_model_age_days=12.0, fine_tunes_since_full_retrain=0,
...     compute_budget_left=3000.0, risk_tier="low", production_model_exists=True, typical_batch_rows=2000,
...     affected_regions=("south",), evidence_ids={"drift_report_id": "dr-42"})
>>> decision = decide(evidence, load_policy_config())
>>> decision.action, decision.fired_rules, decision.requires_approval
('fine_tune', ('drift_scope',), False)
>>> print(decision.reasons[0])  # doctest: +NORMALIZE_WHITESPACE
drift_scope: drift is local (segments: region=south; features: price, discount) with severity 0.45 (medium)
>= 0.3: a targeted fine-tune fits a limited shift
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Callable, Iterable, Mapping

from ct_assets.core.decision.policy_config import (
    ACTION_ESCALATE,
    ACTION_FINE_TUNE,
    ACTION_NONE,
    ACTION_RETRAIN,
    TIMING_ON_EVIDENCE,
    PolicyConfig,
)
from ct_assets.core.monitoring.drift.types import SEVERITY_LEVELS

DRIFT_SCOPES: tuple[str, ...] = ("none", "local", "global")
RISK_TIERS: tuple[str, ...] = ("low", "high")
# Evidence rules are combined by taking the strongest action any of them asks for.
_STRENGTH: dict[str, int] = {ACTION_NONE: 0, ACTION_FINE_TUNE: 1, ACTION_RETRAIN: 2}
_UPDATES: tuple[str, ...] = (ACTION_FINE_TUNE, ACTION_RETRAIN)
# Evidence that the data moved, whose updates wait until the avoidable loss pays for them (cost-aware
# timing). A measured loss of labelled performance (concept drift, a falling metric, with bootstrap
# intervals) acts at once: the error count at the decision threshold can miss a loss the metric sees (a
# rare positive class). The other rules are schedules, mandates or external signals (staleness, label
# accumulation, architecture, high risk, complaints) and act whenever they fire.
COST_TIMED_RULES: frozenset[str] = frozenset({"drift_scope", "unseen_categories"})


@dataclass(frozen=True)
class Evidence:
    """Everything the policy weighs, as plain values (filled from drift reports, labels, registry, budget).

    Metric drop is reference metric minus recent metric in the metric's units, positive = worse.
    Label counts are rows; ``typical_batch_rows`` (labelled rows of a typical period) turns the policy's
    batches'-worth thresholds into rows. ``avoidable_errors`` are the serving model's errors beyond its
    reference and noise on the ``avoidable_rows`` labelled since the later of its update and the last
    rejected candidate (``None``: not measured, the cost-aware trigger stays silent); ``rejected_path`` is
    the path of a candidate rejected since the last update, ``labels_since_rejection`` what arrived since.
    ``regime_window_start`` is the period a retrain's window would start at (the new regime, topped up),
    with its reason.
    Costs and budget are in ``config.cost.unit``; a cost estimate of ``None`` means "never measured" and
    the configured default is used. ``affected_regions`` are the regions whose traffic shifted (every
    served region for a global shift); ``evidence_ids`` name the reports the evidence came from.
    """

    drift_scope: str
    drift_severity_score: float
    drift_severity_level: str
    affected_segments: tuple[str, ...]
    drifted_features: tuple[str, ...]
    unseen_category_share: float
    concept_drift_detected: bool
    metric_drop: float
    covariate_drift_small: bool
    complaint_alert: bool
    complaint_rate_ratio: float
    new_labels_since_training: int
    label_coverage_recent: float
    labelled_rows_new_regime: int
    production_model_age_days: float
    fine_tunes_since_full_retrain: int
    compute_budget_left: float
    risk_tier: str
    production_model_exists: bool
    typical_batch_rows: int
    fine_tune_divergence: float | None = None
    retrain_cost_estimate: float | None = None
    fine_tune_cost_estimate: float | None = None
    affected_regions: tuple[str, ...] = ()
    architecture_change_required: bool = False
    rapid_rollback_needed: bool = False
    avoidable_errors: float | None = None
    avoidable_rows: int = 0
    rejected_path: str | None = None
    labels_since_rejection: int = 0
    regime_window_start: int | None = None
    regime_window_reason: str = ""
    evidence_ids: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        _check_choice("drift_scope", self.drift_scope, DRIFT_SCOPES)
        _check_choice("drift_severity_level", self.drift_severity_level, SEVERITY_LEVELS)
        _check_choice("risk_tier", self.risk_tier, RISK_TIERS)
        for name in ("drift_severity_score", "unseen_category_share", "label_coverage_recent"):
            _check_number(name, getattr(self, name), minimum=0.0, maximum=1.0)
        for name in ("complaint_rate_ratio", "production_model_age_days"):
            _check_number(name, getattr(self, name), minimum=0.0)
        _check_number("metric_drop", self.metric_drop)
        _check_number("compute_budget_left", self.compute_budget_left)
        for name in ("fine_tune_divergence", "retrain_cost_estimate", "fine_tune_cost_estimate"):
            if getattr(self, name) is not None:
                _check_number(name, getattr(self, name), minimum=0.0)
        if self.avoidable_errors is not None:
            _check_number("avoidable_errors", self.avoidable_errors, minimum=0.0)
        if self.rejected_path is not None:
            _check_choice("rejected_path", self.rejected_path, tuple(_UPDATES))
        for name in ("new_labels_since_training", "labelled_rows_new_regime", "fine_tunes_since_full_retrain",
                     "typical_batch_rows", "avoidable_rows", "labels_since_rejection"):
            _check_count(name, getattr(self, name))
        for name in ("concept_drift_detected", "covariate_drift_small", "complaint_alert",
                     "production_model_exists", "architecture_change_required", "rapid_rollback_needed"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"evidence field '{name}' must be a bool, got {getattr(self, name)!r}")
        for name in ("affected_segments", "drifted_features", "affected_regions"):
            object.__setattr__(self, name, _string_tuple(name, getattr(self, name)))
        if not isinstance(self.evidence_ids, Mapping) or not all(
                isinstance(k, str) and isinstance(v, str) for k, v in self.evidence_ids.items()):
            raise ValueError(f"evidence field 'evidence_ids' must map str to str, got {self.evidence_ids!r}")
        # A read-only copy: the caller's dict cannot change the evidence a decision was made on.
        object.__setattr__(self, "evidence_ids", MappingProxyType(dict(self.evidence_ids)))


@dataclass(frozen=True)
class RuleFiring:
    """One rule that fired: its name, the action it asks for or imposes, and why, in plain language."""

    rule: str
    action: str
    reason: str


@dataclass(frozen=True)
class Decision:
    """The policy's answer. ``reasons`` holds one ``"<rule>: <why>"`` line per name in ``fired_rules``.

    ``requires_approval`` is True when a human must act: promotion of the resulting model waits for
    approval (the ``human_approval`` rule fired) or the decision itself is ``escalate_to_human``.

    ``wanted_action`` is the strongest action the evidence rules asked for before the label, budget and
    debt constraints; ``estimated_cost`` is the cost of ``action`` and ``budget_left_after`` what remains
    of the period's budget once it has run (both in ``cost_unit``). A retrain after a detected change
    trains from ``training_window_start`` (a period; None: the default trailing window), for the reason given.
    """

    action: str
    requires_approval: bool
    reasons: tuple[str, ...]
    fired_rules: tuple[str, ...]
    wanted_action: str
    estimated_cost: float
    budget_left_after: float
    cost_unit: str
    policy_version: str
    training_window_start: int | None = None
    training_window_reason: str = ""


EvidenceRule = Callable[[Evidence, PolicyConfig], "RuleFiring | None"]
ConstraintRule = Callable[[str, Evidence, PolicyConfig], "RuleFiring | None"]


def decide(evidence: Evidence, config: PolicyConfig) -> Decision:
    """Choose ``none | fine_tune | retrain | escalate_to_human`` from the evidence (order: module docstring)."""
    if not isinstance(evidence, Evidence):
        raise ValueError(f"evidence must be an Evidence, got {type(evidence).__name__}")
    if not isinstance(config, PolicyConfig):
        raise ValueError(f"config must be a PolicyConfig, got {type(config).__name__}")

    evidence_rules = (rule_bootstrap,) if not evidence.production_model_exists else EVIDENCE_RULES
    firings = [firing for rule in evidence_rules if (firing := rule(evidence, config)) is not None]
    wanted = _strongest(firing.action for firing in firings)

    action = wanted
    timing = rule_cost_aware_timing(firings, evidence, config)
    if timing is not None:
        firings.append(timing)
        action = timing.action
    for constraint in CONSTRAINT_RULES:
        firing = constraint(action, evidence, config)
        if firing is not None:
            firings.append(firing)
            action = firing.action

    estimated_cost = {ACTION_RETRAIN: retrain_cost(evidence, config),
                      ACTION_FINE_TUNE: fine_tune_cost(evidence, config)}.get(action, 0.0)
    requires_approval = action == ACTION_ESCALATE or any(f.rule == "human_approval" for f in firings)
    regime_window = action == ACTION_RETRAIN and evidence.regime_window_start is not None
    return Decision(
        action=action,
        requires_approval=requires_approval,
        reasons=tuple(f"{f.rule}: {f.reason}" for f in firings),
        fired_rules=tuple(f.rule for f in firings),
        wanted_action=wanted,
        estimated_cost=estimated_cost,
        budget_left_after=evidence.compute_budget_left - estimated_cost,
        cost_unit=config.cost.unit,
        policy_version=config.policy_version,
        training_window_start=evidence.regime_window_start if regime_window else None,
        training_window_reason=evidence.regime_window_reason if regime_window else "",
    )


def _strongest(actions: Iterable[str]) -> str:
    return max(actions, key=_STRENGTH.__getitem__, default=ACTION_NONE)


# --- evidence rules: each asks for an action ---------------------------------------------------------


def rule_bootstrap(evidence: Evidence, config: PolicyConfig) -> RuleFiring | None:
    """No production model yet: train the first one from scratch."""
    if evidence.production_model_exists:
        return None
    return RuleFiring("bootstrap", ACTION_RETRAIN,
                      "no production model exists: train the first model from scratch (bootstrap)")


def rule_drift_scope(evidence: Evidence, config: PolicyConfig) -> RuleFiring | None:
    """Local shift (one region, new slang) -> fine-tune; global shift (sensor hardware, market) -> retrain."""
    threshold = config.drift.min_severity_score
    if evidence.drift_scope == "none" or evidence.drift_severity_score < threshold:
        return None
    where = (f"segments: {_listed(evidence.affected_segments)}; "
             f"features: {_listed(evidence.drifted_features)}")
    observed = (f"drift is {evidence.drift_scope} ({where}) with severity "
                f"{_num(evidence.drift_severity_score)} ({evidence.drift_severity_level}) >= {_num(threshold)}")
    if evidence.drift_scope == "local":
        return RuleFiring("drift_scope", ACTION_FINE_TUNE, f"{observed}: a targeted fine-tune fits a limited shift")
    return RuleFiring("drift_scope", ACTION_RETRAIN, f"{observed}: a broad shift calls for retraining from scratch")


def rule_concept_drift(evidence: Evidence, config: PolicyConfig) -> RuleFiring | None:
    """Concept drift (P(y|X) moved) costing enough metric -> retrain, or fine-tune if confined to a local scope."""
    threshold = config.concept_drift.min_metric_drop
    if not evidence.concept_drift_detected or evidence.metric_drop < threshold:
        return None
    covariate = ("with little covariate drift, so P(y|X) moved beyond P(X)" if evidence.covariate_drift_small
                 else "alongside covariate drift")
    observed = (f"concept drift detected {covariate}; metric dropped by {_num(evidence.metric_drop)} "
                f">= {_num(threshold)}")
    if evidence.drift_scope == "local":
        return RuleFiring("concept_drift", ACTION_FINE_TUNE,
                          f"{observed}, confined to {_listed(evidence.affected_segments)}: fine-tune on the new regime")
    return RuleFiring("concept_drift", ACTION_RETRAIN,
                      f"{observed}, not confined to a local scope: a systemic change calls for retraining")


def rule_falling_metric(evidence: Evidence, config: PolicyConfig) -> RuleFiring | None:
    """Falling evaluation metric: a moderate drop -> fine-tune, a large drop -> retrain."""
    fine_tune_drop, retrain_drop = config.metric.fine_tune_drop, config.metric.retrain_drop
    if evidence.metric_drop >= retrain_drop:
        return RuleFiring("falling_metric", ACTION_RETRAIN,
                          f"metric dropped by {_num(evidence.metric_drop)} >= {_num(retrain_drop)} (retrain drop)")
    if evidence.metric_drop >= fine_tune_drop:
        return RuleFiring("falling_metric", ACTION_FINE_TUNE,
                          f"metric dropped by {_num(evidence.metric_drop)} >= {_num(fine_tune_drop)} "
                          f"(fine-tune drop) but < {_num(retrain_drop)} (retrain drop)")
    return None


def rule_rising_complaints(evidence: Evidence, config: PolicyConfig) -> RuleFiring | None:
    """Rising complaints -> at least fine-tune; corroborated by concept drift -> retrain."""
    threshold = config.complaints.min_rate_ratio
    if not evidence.complaint_alert or evidence.complaint_rate_ratio < threshold:
        return None
    observed = f"complaint rate is {_num(evidence.complaint_rate_ratio)}x the baseline (>= {_num(threshold)}x)"
    if evidence.concept_drift_detected:
        return RuleFiring("rising_complaints", ACTION_RETRAIN,
                          f"{observed} and concept drift is detected: retrain on the new relationship")
    return RuleFiring("rising_complaints", ACTION_FINE_TUNE, f"{observed}: fine-tune on recent feedback")


def rule_unseen_categories(evidence: Evidence, config: PolicyConfig) -> RuleFiring | None:
    """Many rows with never-seen category values (new slang, new products) -> fine-tune to learn them."""
    threshold = config.unseen_categories.fine_tune_share
    if evidence.unseen_category_share < threshold:
        return None
    return RuleFiring("unseen_categories", ACTION_FINE_TUNE,
                      f"{_pct(evidence.unseen_category_share)} of recent rows carry unseen category values "
                      f"(>= {_pct(threshold)}): fine-tune so the model learns them")


def rule_label_accumulation(evidence: Evidence, config: PolicyConfig) -> RuleFiring | None:
    """Enough new labels since the last training -> at least fine-tune: the cheap path on streams where more
    data helps although the error never rises above the reference."""
    threshold = label_rows(config.labels.accumulated_trigger_batches, evidence.typical_batch_rows)
    if evidence.new_labels_since_training < threshold:
        return None
    return RuleFiring("label_accumulation", ACTION_FINE_TUNE,
                      f"{evidence.new_labels_since_training} new labels since the last training "
                      f">= {threshold} ({_batches(config.labels.accumulated_trigger_batches, evidence)}): "
                      "update the model with them")


def rule_avoidable_loss(evidence: Evidence, config: PolicyConfig) -> RuleFiring | None:
    """The avoidable errors since the last update, at the configured price, pay for an update (CARA's
    cumulative threshold); the drift evidence chooses the path (:func:`path_for_change`)."""
    value = avoidable_value(evidence, config)
    if value is None or not evidence.production_model_exists:
        return None
    path, why = path_for_change(evidence, config)
    cost = path_cost(path, evidence, config)
    if value < cost:
        return None
    return RuleFiring("avoidable_loss", path,
                      f"{_avoidable_summary(evidence, config)}; a {_verb(path)} costs {_num(cost)} "
                      f"{config.cost.unit}; {why}, so {_verb(path)}")


def is_stale(model_age_days: float, config: PolicyConfig) -> bool:
    """Whether a model whose data ends ``model_age_days`` days ago is older than the policy allows.

    >>> from ct_assets.core.decision.policy_config import load_policy_config
    >>> config = load_policy_config()
    >>> is_stale(config.staleness.max_age_days, config), is_stale(config.staleness.max_age_days + 1, config)
    (False, True)
    """
    return model_age_days > config.staleness.max_age_days


def rule_staleness(evidence: Evidence, config: PolicyConfig) -> RuleFiring | None:
    """Production model older than the freshness policy allows -> at least fine-tune."""
    max_age = config.staleness.max_age_days
    if not is_stale(evidence.production_model_age_days, config):
        return None
    return RuleFiring("staleness", ACTION_FINE_TUNE,
                      f"production model is {_num(evidence.production_model_age_days)} days old "
                      f"> {_num(max_age)} days allowed: refresh it")


def rule_architecture_change(evidence: Evidence, config: PolicyConfig) -> RuleFiring | None:
    """The model's architecture must change to capture new relationships -> retrain (cannot fine-tune)."""
    if not evidence.architecture_change_required:
        return None
    return RuleFiring("architecture_change", ACTION_RETRAIN,
                      "the architecture must change: only a retrain from scratch can change it")


def rule_high_risk_proactive_retrain(evidence: Evidence, config: PolicyConfig) -> RuleFiring | None:
    """High risk tier with global or concept evidence -> retrain proactively, with rigorous validation."""
    systemic = _high_risk_systemic_evidence(evidence, config)
    if systemic is None:
        return None
    return RuleFiring("high_risk_proactive_retrain", ACTION_RETRAIN,
                      f"risk tier is high and {systemic}: retrain proactively with rigorous validation "
                      "rather than patch a possibly biased model")


EVIDENCE_RULES: tuple[EvidenceRule, ...] = (
    rule_avoidable_loss,
    rule_drift_scope,
    rule_concept_drift,
    rule_falling_metric,
    rule_rising_complaints,
    rule_unseen_categories,
    rule_label_accumulation,
    rule_staleness,
    rule_architecture_change,
    rule_high_risk_proactive_retrain,
)


# --- cost-aware timing: evidence of change waits until an update pays -----------------------------------


def rule_cost_aware_timing(firings: list[RuleFiring], evidence: Evidence, config: PolicyConfig) -> RuleFiring | None:
    """Hold the updates that drift or unseen-category evidence asks for while the avoidable
    loss since the last update is worth less than their cost; schedules and mandates still act."""
    value = avoidable_value(evidence, config)
    if value is None or not evidence.production_model_exists:
        return None
    held = [f for f in firings if f.rule in COST_TIMED_RULES and f.action in _UPDATES
            and value < path_cost(f.action, evidence, config)]
    kept = _strongest(f.action for f in firings if f not in held)
    if not held or _STRENGTH[kept] >= _STRENGTH[_strongest(f.action for f in firings)]:
        return None
    asked = max((f.action for f in held), key=_STRENGTH.__getitem__)
    rules = ", ".join(sorted({f.rule for f in held}))
    then = "wait for more evidence" if kept == ACTION_NONE else f"{_verb(kept)} as the other rules ask"
    return RuleFiring("cost_aware_timing", kept,
                      f"{_avoidable_summary(evidence, config)}; {rules} asked for a {_verb(asked)}, which costs "
                      f"{_num(path_cost(asked, evidence, config))} {config.cost.unit}: not worth it yet, {then}")


# --- constraint rules: each may change the action wanted so far ----------------------------------------


def rule_rapid_rollback(action: str, evidence: Evidence, config: PolicyConfig) -> RuleFiring | None:
    """Quick recovery needed -> prefer a fine-tune (minutes, not a full retrain) when one may stand in."""
    if not evidence.rapid_rollback_needed or action == ACTION_ESCALATE:
        return None
    if action == ACTION_FINE_TUNE:
        return RuleFiring("rapid_rollback", ACTION_FINE_TUNE,
                          "rapid recovery is needed: the fine-tune already wanted is the quick path")
    blockers = fine_tune_blockers(evidence, config)
    if blockers:
        return RuleFiring("rapid_rollback", ACTION_RETRAIN,
                          f"rapid recovery is needed, but a fine-tune cannot stand in ({'; '.join(blockers)}): retrain")
    if action == ACTION_RETRAIN:
        return RuleFiring("rapid_rollback", ACTION_FINE_TUNE,
                          "rapid recovery is needed: fine-tune instead of retrain for a quick fix")
    return RuleFiring("rapid_rollback", ACTION_FINE_TUNE,
                      "rapid recovery is needed although no other rule fired: a quick fine-tune")


def rule_technical_debt(action: str, evidence: Evidence, config: PolicyConfig) -> RuleFiring | None:
    """After K consecutive fine-tunes (or too much divergence) the next update is a retrain, however local."""
    debt = _technical_debt(evidence, config)
    if debt is None or action not in _UPDATES:
        return None
    if action == ACTION_RETRAIN:
        return RuleFiring("technical_debt", ACTION_RETRAIN, f"{debt}: the retrain also clears the patching debt")
    return RuleFiring("technical_debt", ACTION_RETRAIN,
                      f"{debt}: retrain instead of another fine-tune, however local the shift")


def rule_cool_down(action: str, evidence: Evidence, config: PolicyConfig) -> RuleFiring | None:
    """After a rejected candidate, the same request waits for new evidence instead of repeating every batch:
    avoidable loss since the rejection that pays for it again, or a batch-accumulation's worth of new labels."""
    if evidence.rejected_path is None or action != evidence.rejected_path:
        return None
    value = avoidable_value(evidence, config)
    if value is not None and value >= path_cost(action, evidence, config):
        return None
    needed = label_rows(config.labels.accumulated_trigger_batches, evidence.typical_batch_rows)
    if evidence.labels_since_rejection >= needed:
        return None
    since = f"{evidence.labels_since_rejection} new labels since the rejection < {needed}"
    if value is not None:
        since += f", avoidable errors since then worth {_num(value)} < {_num(path_cost(action, evidence, config))}"
    return RuleFiring("cool_down", ACTION_NONE,
                      f"a {_verb(action)} candidate was rejected since the last update and no new evidence has "
                      f"arrived ({since} {config.cost.unit}): wait instead of repeating it")


def rule_labels_plentiful(action: str, evidence: Evidence, config: PolicyConfig) -> RuleFiring | None:
    """A retrain is allowed when labels for the new regime are plentiful and representative."""
    if action != ACTION_RETRAIN or not _labels_allow_retrain(evidence, config):
        return None
    return RuleFiring("labels_plentiful", ACTION_RETRAIN, f"retrain allowed: {_label_summary(evidence, config)}")


def rule_labels_scarce(action: str, evidence: Evidence, config: PolicyConfig) -> RuleFiring | None:
    """Too few labels: a retrain becomes a fine-tune or an escalation; no labels at all -> escalate or wait."""
    labels = config.labels
    rows = evidence.labelled_rows_new_regime
    if action not in _UPDATES or (action == ACTION_RETRAIN and _labels_allow_retrain(evidence, config)):
        return None
    summary = _label_summary(evidence, config)
    if not evidence.production_model_exists:
        # Bootstrap: nothing to fine-tune and no model to protect, so wait for labels.
        return RuleFiring("labels_scarce", ACTION_NONE,
                          f"cannot bootstrap yet: {rows} labelled rows < "
                          f"{label_rows(labels.min_batches_for_retrain, evidence.typical_batch_rows)}; wait for labels")
    fine_tune_rows = label_rows(labels.min_batches_for_fine_tune, evidence.typical_batch_rows)
    if rows < fine_tune_rows:
        strong = _strong_evidence(evidence, config)
        too_few = (f"{rows} labelled rows < {fine_tune_rows} "
                   f"({_batches(labels.min_batches_for_fine_tune, evidence)}) needed even for a fine-tune")
        if strong is not None:
            return RuleFiring("labels_scarce", ACTION_ESCALATE,
                              f"{too_few}, yet the evidence is strong ({strong}): a human must decide")
        return RuleFiring("labels_scarce", ACTION_NONE, f"{too_few} and the evidence is not strong: wait for labels")
    if action == ACTION_FINE_TUNE:
        return None
    blockers = fine_tune_blockers(evidence, config)
    if blockers:
        return RuleFiring("labels_scarce", ACTION_ESCALATE,
                          f"retrain needed but labels are scarce ({summary}) and a fine-tune cannot stand in "
                          f"({'; '.join(blockers)}): a human must decide")
    if labels.when_scarce_for_retrain == ACTION_FINE_TUNE:
        return RuleFiring("labels_scarce", ACTION_FINE_TUNE,
                          f"labels are too scarce for a retrain ({summary}): fine-tune instead")
    return RuleFiring("labels_scarce", ACTION_ESCALATE,
                      f"labels are too scarce for a retrain ({summary}) and the policy escalates in that case")


def rule_compute_budget(action: str, evidence: Evidence, config: PolicyConfig) -> RuleFiring | None:
    """Retrain over budget -> fine-tune if one may stand in and fits, else escalate; fine-tune over budget -> escalate.

    The estimates are the measured costs when known, else the configured defaults.
    """
    budget, unit = evidence.compute_budget_left, config.cost.unit
    retrain, fine_tune = retrain_cost(evidence, config), fine_tune_cost(evidence, config)
    if action == ACTION_RETRAIN and retrain > budget:
        over = f"a retrain ({_num(retrain)} {unit}) exceeds the {_num(budget)} {unit} left in the budget"
        blockers = fine_tune_blockers(evidence, config)
        if blockers:
            return RuleFiring("compute_budget", ACTION_ESCALATE,
                              f"{over} and a fine-tune cannot stand in ({'; '.join(blockers)}): a human must decide")
        if fine_tune > budget:
            return RuleFiring("compute_budget", ACTION_ESCALATE,
                              f"{over} and so does a fine-tune ({_num(fine_tune)} {unit}): a human must decide")
        return RuleFiring("compute_budget", ACTION_FINE_TUNE,
                          f"{over}: fine-tune instead ({_num(fine_tune)} {unit} fits)")
    if action == ACTION_FINE_TUNE and fine_tune > budget:
        return RuleFiring("compute_budget", ACTION_ESCALATE,
                          f"even a fine-tune ({_num(fine_tune)} {unit}) exceeds the {_num(budget)} {unit} left "
                          "in the budget: a human must decide")
    return None


def rule_human_approval(action: str, evidence: Evidence, config: PolicyConfig) -> RuleFiring | None:
    """High risk tier or an affected sign-off region: promotion of the new model waits for a human."""
    if action not in _UPDATES:
        return None
    grounds = []
    if evidence.risk_tier == "high" and config.risk.high_risk_requires_approval:
        grounds.append("risk tier is high")
    signoff = [region for region in evidence.affected_regions if region in config.jurisdiction.signoff_regions]
    if signoff:
        grounds.append(f"affected regions {_listed(tuple(signoff))} require human sign-off by regulation")
    if not grounds:
        return None
    return RuleFiring("human_approval", action,
                      f"{' and '.join(grounds)}: the {_verb(action)} result waits for human approval before promotion")


CONSTRAINT_RULES: tuple[ConstraintRule, ...] = (
    rule_rapid_rollback,
    rule_technical_debt,
    rule_cool_down,
    rule_labels_plentiful,
    rule_labels_scarce,
    rule_compute_budget,
    rule_human_approval,
)

# The fired rules that best say why a model was asked for, most telling first (run tags, the registry).
TRIGGER_RULES: tuple[str, ...] = ("bootstrap", "avoidable_loss", "drift_scope", "concept_drift", "falling_metric",
                                  "rising_complaints",
                                  "staleness", "label_accumulation", "architecture_change", "technical_debt")


def main_trigger(fired_rules: tuple[str, ...] | list[str]) -> str:
    """The fired rule that best names why a candidate was asked for.

    >>> main_trigger(["label_accumulation", "drift_scope", "labels_plentiful"])
    'drift_scope'
    >>> main_trigger(["rapid_rollback"]), main_trigger([])
    ('rapid_rollback', 'policy')
    """
    for rule in TRIGGER_RULES:
        if rule in fired_rules:
            return rule
    return fired_rules[0] if fired_rules else "policy"


# --- shared evidence readings --------------------------------------------------------------------------


def fine_tune_blockers(evidence: Evidence, config: PolicyConfig) -> tuple[str, ...]:
    """Why a fine-tune may not stand in for a wanted retrain (empty when it may)."""
    blockers = []
    if not evidence.production_model_exists:
        blockers.append("no production model to fine-tune")
    if evidence.architecture_change_required:
        blockers.append("the architecture must change")
    debt = _technical_debt(evidence, config)
    if debt is not None:
        blockers.append(debt)
    systemic = _high_risk_systemic_evidence(evidence, config)
    if systemic is not None:
        blockers.append(f"risk tier is high and {systemic}")
    return tuple(blockers)


def compute_budget_left(spent_in_period: float, config: PolicyConfig) -> float:
    """What is left of ``config.cost.budget_per_period`` after ``spent_in_period`` (negative when overspent).

    The caller sums the measured cost of the runs of the last ``config.cost.period_days`` days.

    >>> from ct_assets.core.decision.policy_config import load_policy_config
    >>> config = load_policy_config()
    >>> compute_budget_left(600.0, config) == config.cost.budget_per_period - 600.0
    True
    """
    _check_number("spent_in_period", spent_in_period, minimum=0.0, kind="argument")
    return config.cost.budget_per_period - spent_in_period


def retrain_cost(evidence: Evidence, config: PolicyConfig) -> float:
    """Measured retrain cost when known, else the configured default (in ``config.cost.unit``)."""
    if evidence.retrain_cost_estimate is None:
        return config.cost.default_retrain_cost
    return evidence.retrain_cost_estimate


def fine_tune_cost(evidence: Evidence, config: PolicyConfig) -> float:
    """Measured fine-tune cost when known, else the configured default (in ``config.cost.unit``)."""
    if evidence.fine_tune_cost_estimate is None:
        return config.cost.default_fine_tune_cost
    return evidence.fine_tune_cost_estimate


def label_rows(batches: float, typical_batch_rows: int) -> int:
    """A threshold in batches' worth as labelled rows of a stream with this typical batch (at least one row).

    >>> label_rows(2.5, 200), label_rows(2.5, 100_000)
    (500, 250000)
    """
    return max(1, math.ceil(batches * typical_batch_rows))


def avoidable_value(evidence: Evidence, config: PolicyConfig) -> float | None:
    """What the avoidable errors since the last update are worth at the configured price (None: not measured,
    or the cost-aware timing is switched off)."""
    if evidence.avoidable_errors is None or config.avoidable_loss.timing == TIMING_ON_EVIDENCE:
        return None
    return evidence.avoidable_errors * config.avoidable_loss.price_per_error


def path_for_change(evidence: Evidence, config: PolicyConfig) -> tuple[str, str]:
    """The update the drift evidence calls for, and why: a local shift -> fine-tune; a global shift, concept
    drift, or errors no local shift explains -> retrain."""
    severe = evidence.drift_severity_score >= config.drift.min_severity_score
    where = _listed(evidence.affected_segments)
    if evidence.concept_drift_detected and evidence.drift_scope != "local":
        return ACTION_RETRAIN, "concept drift is detected"
    if severe and evidence.drift_scope == "global":
        return ACTION_RETRAIN, f"the shift is global (features: {_listed(evidence.drifted_features)})"
    if severe and evidence.drift_scope == "local":
        return ACTION_FINE_TUNE, f"local shift in {where}"
    return ACTION_RETRAIN, "no local shift explains the excess errors"


def path_cost(path: str, evidence: Evidence, config: PolicyConfig) -> float:
    """Expected cost of an update along ``path`` (measured median, else the configured default)."""
    return retrain_cost(evidence, config) if path == ACTION_RETRAIN else fine_tune_cost(evidence, config)


def _avoidable_summary(evidence: Evidence, config: PolicyConfig) -> str:
    value = avoidable_value(evidence, config) or 0.0
    since = "the last rejected candidate" if evidence.rejected_path else "the last update"
    return (f"about {evidence.avoidable_errors or 0.0:.0f} avoidable errors in {evidence.avoidable_rows} labelled "
            f"rows since {since}, worth {_num(value)} {config.cost.unit} at the configured price of "
            f"{_num(config.avoidable_loss.price_per_error)} per error")


def _technical_debt(evidence: Evidence, config: PolicyConfig) -> str | None:
    """Describe the technical-debt bound that is reached, or None."""
    debt = config.technical_debt
    if evidence.fine_tunes_since_full_retrain >= debt.max_consecutive_fine_tunes:
        return (f"{evidence.fine_tunes_since_full_retrain} consecutive fine-tunes since the last full retrain "
                f">= {debt.max_consecutive_fine_tunes}")
    divergence = evidence.fine_tune_divergence
    if divergence is not None and divergence > debt.max_fine_tune_divergence:
        return (f"fine-tune divergence from the last full retrain {_num(divergence)} "
                f"> {_num(debt.max_fine_tune_divergence)}")
    return None


def _high_risk_systemic_evidence(evidence: Evidence, config: PolicyConfig) -> str | None:
    """For the high risk tier, describe global or concept evidence that calls for retraining, or None."""
    if evidence.risk_tier != "high":
        return None
    threshold = config.risk.high_risk_min_severity_score
    if evidence.drift_scope == "global" and evidence.drift_severity_score >= threshold:
        return (f"drift is global with severity {_num(evidence.drift_severity_score)} "
                f">= {_num(threshold)} (high-risk threshold)")
    if evidence.concept_drift_detected:
        return "concept drift is detected"
    return None


def _strong_evidence(evidence: Evidence, config: PolicyConfig) -> str | None:
    """Describe evidence strong enough to escalate when no update is possible, or None."""
    threshold = config.labels.strong_evidence_min_severity
    if evidence.concept_drift_detected:
        return "concept drift detected"
    if evidence.drift_severity_score >= threshold:
        return f"drift severity {_num(evidence.drift_severity_score)} >= {_num(threshold)}"
    if evidence.metric_drop >= config.metric.retrain_drop:
        return f"metric drop {_num(evidence.metric_drop)} >= {_num(config.metric.retrain_drop)}"
    return None


def _labels_allow_retrain(evidence: Evidence, config: PolicyConfig) -> bool:
    """Plentiful (row count) and representative (coverage) labels; coverage is moot for a first model."""
    labels = config.labels
    needed = label_rows(labels.min_batches_for_retrain, evidence.typical_batch_rows)
    plentiful = evidence.labelled_rows_new_regime >= needed
    representative = evidence.label_coverage_recent >= labels.min_coverage_for_retrain
    return plentiful and (representative or not evidence.production_model_exists)


def _label_summary(evidence: Evidence, config: PolicyConfig) -> str:
    labels = config.labels
    needed = label_rows(labels.min_batches_for_retrain, evidence.typical_batch_rows)
    rows_cmp = ">=" if evidence.labelled_rows_new_regime >= needed else "<"
    cov_cmp = ">=" if evidence.label_coverage_recent >= labels.min_coverage_for_retrain else "<"
    return (f"{evidence.labelled_rows_new_regime} labelled rows for the new regime {rows_cmp} "
            f"{needed} ({_batches(labels.min_batches_for_retrain, evidence)}), "
            f"recent-window label coverage {_pct(evidence.label_coverage_recent)} "
            f"{cov_cmp} {_pct(labels.min_coverage_for_retrain)}")


# --- formatting and validation helpers -----------------------------------------------------------------


def _num(value: float) -> str:
    return f"{value:.4g}"


def _pct(share: float) -> str:
    return f"{share * 100:.3g}%"


def _listed(items: tuple[str, ...]) -> str:
    return ", ".join(items) if items else "unnamed"


def _batches(batches: float, evidence: Evidence) -> str:
    return f"{batches:g} batches' worth of {evidence.typical_batch_rows} rows"


def _verb(action: str) -> str:
    return action.replace("_", "-")


def _check_choice(name: str, value: object, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ValueError(f"evidence field '{name}' must be one of {list(choices)}, got {value!r}")


def _check_number(name: str, value: object, minimum: float | None = None, maximum: float | None = None,
                  kind: str = "evidence field") -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{kind} '{name}' must be a finite number, got {value!r}")
    if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        raise ValueError(f"{kind} '{name}' must be within [{minimum}, {maximum}], got {value!r}")


def _check_count(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"evidence field '{name}' must be a non-negative integer, got {value!r}")


def _string_tuple(name: str, value: object) -> tuple[str, ...]:
    if isinstance(value, str) or not isinstance(value, (tuple, list)) or not all(isinstance(v, str) for v in value):
        raise ValueError(f"evidence field '{name}' must be a tuple of strings, got {value!r}")
    return tuple(value)
