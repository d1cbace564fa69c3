"""Table-driven tests of the retrain-vs-fine-tune policy: one row per rule and the interesting combinations."""

from __future__ import annotations

import copy
import dataclasses
import tomllib
from typing import Any

import pytest

from ct_assets.core.decision.policy import Evidence, compute_budget_left, decide
from ct_assets.core.decision.policy_config import (
    DEFAULT_POLICY_PATH,
    PolicyConfig,
    parse_policy_config,
)

# A healthy production model: no drift, nothing accumulated, plenty of representative labels and budget.
STABLE = Evidence(
    drift_scope="none", drift_severity_score=0.05, drift_severity_level="none",
    affected_segments=(), drifted_features=(), unseen_category_share=0.0,
    concept_drift_detected=False, metric_drop=0.0, covariate_drift_small=True,
    complaint_alert=False, complaint_rate_ratio=1.0,
    new_labels_since_training=1_000, label_coverage_recent=0.8, labelled_rows_new_regime=8_000,
    production_model_age_days=5.0, fine_tunes_since_full_retrain=0,
    compute_budget_left=3_000.0, risk_tier="low", production_model_exists=True, typical_batch_rows=2_000,
    affected_regions=(), evidence_ids={"drift_report_id": "dr-1"},
)
LOCAL = dict(drift_scope="local", drift_severity_score=0.45, drift_severity_level="medium",
             affected_segments=("region=south",), drifted_features=("price", "discount"),
             covariate_drift_small=False, affected_regions=("south",))
GLOBAL = dict(drift_scope="global", drift_severity_score=0.8, drift_severity_level="high",
              affected_segments=("region=north", "region=south", "region=east", "region=west", "region=central"),
              drifted_features=("sensor_motion", "sensor_pressure", "sensor_latency_ms", "sensor_signal"),
              covariate_drift_small=False, affected_regions=("north", "south", "east", "west", "central"))
CONCEPT = dict(concept_drift_detected=True, metric_drop=0.05, covariate_drift_small=True)
COMPLAINTS = dict(complaint_alert=True, complaint_rate_ratio=2.5)
SCARCE_LABELS = dict(labelled_rows_new_regime=1_000)
NO_LABELS = dict(labelled_rows_new_regime=0, new_labels_since_training=0)
RETRAIN_OVER_BUDGET = dict(compute_budget_left=100.0)  # default retrain 600 > 100 >= default fine-tune 60
NOTHING_FITS = dict(compute_budget_left=10.0)
HIGH_RISK = dict(risk_tier="high")


def shipped_raw() -> dict[str, Any]:
    return tomllib.loads(DEFAULT_POLICY_PATH.read_text(encoding="utf-8"))


# The table's costs are CPU seconds (the rules do not depend on the unit; the shipped unit is train_gflops).
CPU_SECONDS_COST = {"unit": "cpu_seconds", "budget_per_period": 3_600.0, "default_retrain_cost": 600.0,
                    "default_fine_tune_cost": 60.0}


def config_with(**overrides: Any) -> PolicyConfig:
    """The shipped config in CPU seconds with ``section__key=value`` overrides, validated like a real file."""
    raw = copy.deepcopy(shipped_raw())
    raw["cost"].update(CPU_SECONDS_COST)
    for dotted, value in overrides.items():
        section, key = dotted.split("__")
        raw[section][key] = value
    return parse_policy_config(raw)


def evidence(*parts: dict[str, Any], **overrides: Any) -> Evidence:
    merged: dict[str, Any] = {}
    for part in parts:
        merged.update(part)
    merged.update(overrides)
    return dataclasses.replace(STABLE, **merged)


CASES = [
    pytest.param(evidence(), {}, "none", False, (), id="stable->none"),
    pytest.param(evidence(LOCAL), {}, "fine_tune", False, ("drift_scope",), id="local->fine_tune"),
    pytest.param(evidence(GLOBAL), {}, "retrain", False, ("drift_scope", "labels_plentiful"), id="global->retrain"),
    pytest.param(evidence(LOCAL, drift_severity_score=0.2), {}, "none", False, (),
                 id="local_below_severity_threshold->none"),
    pytest.param(evidence(LOCAL), {"drift__min_severity_score": 0.5}, "none", False, (),
                 id="threshold_read_from_config->none"),
    pytest.param(evidence(CONCEPT), {}, "retrain", False,
                 ("concept_drift", "falling_metric", "labels_plentiful"), id="concept_drift->retrain"),
    pytest.param(evidence(CONCEPT, metric_drop=0.005), {}, "none", False, (),
                 id="concept_drift_costing_little_metric->none"),
    pytest.param(evidence(LOCAL, CONCEPT, covariate_drift_small=False), {}, "fine_tune", False,
                 ("drift_scope", "concept_drift", "falling_metric"), id="local_concept_drift->fine_tune"),
    pytest.param(evidence(metric_drop=0.03), {}, "fine_tune", False, ("falling_metric",),
                 id="moderate_metric_drop->fine_tune"),
    pytest.param(evidence(metric_drop=0.1), {}, "retrain", False, ("falling_metric", "labels_plentiful"),
                 id="large_metric_drop->retrain"),
    pytest.param(evidence(COMPLAINTS), {}, "fine_tune", False, ("rising_complaints",),
                 id="complaints_alone->fine_tune"),
    pytest.param(evidence(COMPLAINTS, complaint_rate_ratio=1.2), {}, "none", False, (),
                 id="complaint_alert_below_ratio->none"),
    pytest.param(evidence(COMPLAINTS, CONCEPT, metric_drop=0.0), {}, "retrain", False,
                 ("rising_complaints", "labels_plentiful"), id="complaints_with_concept_drift->retrain"),
    pytest.param(evidence(unseen_category_share=0.12), {}, "fine_tune", False, ("unseen_categories",),
                 id="unseen_categories->fine_tune"),
    pytest.param(evidence(new_labels_since_training=25_000), {}, "fine_tune", False, ("label_accumulation",),
                 id="labels_accumulated->fine_tune"),
    pytest.param(evidence(production_model_age_days=45.0), {}, "fine_tune", False, ("staleness",),
                 id="stale->fine_tune"),
    pytest.param(evidence(LOCAL, fine_tunes_since_full_retrain=3), {}, "retrain", False,
                 ("drift_scope", "technical_debt", "labels_plentiful"), id="K_fine_tunes_local->retrain"),
    pytest.param(evidence(LOCAL, fine_tune_divergence=0.4), {}, "retrain", False,
                 ("drift_scope", "technical_debt", "labels_plentiful"), id="fine_tune_divergence_local->retrain"),
    pytest.param(evidence(LOCAL, fine_tunes_since_full_retrain=2), {}, "fine_tune", False, ("drift_scope",),
                 id="below_K_fine_tunes_local->fine_tune"),
    pytest.param(evidence(production_model_age_days=30.0), {}, "none", False, (),
                 id="exactly_max_age_is_not_stale->none"),
    pytest.param(evidence(LOCAL, CONCEPT, HIGH_RISK, covariate_drift_small=False), {}, "retrain", True,
                 ("drift_scope", "concept_drift", "falling_metric", "high_risk_proactive_retrain",
                  "labels_plentiful", "human_approval"), id="high_risk_local_concept_drift->retrain"),
    pytest.param(evidence(fine_tunes_since_full_retrain=5), {}, "none", False, (),
                 id="debt_alone_is_no_trigger->none"),
    pytest.param(evidence(GLOBAL, RETRAIN_OVER_BUDGET), {}, "fine_tune", False,
                 ("drift_scope", "labels_plentiful", "compute_budget"), id="retrain_over_budget->fine_tune"),
    pytest.param(evidence(GLOBAL, NOTHING_FITS), {}, "escalate_to_human", True,
                 ("drift_scope", "labels_plentiful", "compute_budget"), id="nothing_fits_budget->escalate"),
    pytest.param(evidence(LOCAL, NOTHING_FITS), {}, "escalate_to_human", True,
                 ("drift_scope", "compute_budget"), id="fine_tune_over_budget->escalate"),
    pytest.param(evidence(NOTHING_FITS), {}, "none", False, (), id="no_budget_but_nothing_fired->none"),
    pytest.param(evidence(LOCAL, RETRAIN_OVER_BUDGET, fine_tunes_since_full_retrain=3), {}, "escalate_to_human",
                 True, ("drift_scope", "technical_debt", "labels_plentiful", "compute_budget"),
                 id="debt_and_retrain_over_budget->escalate"),
    pytest.param(evidence(GLOBAL, HIGH_RISK), {}, "retrain", True,
                 ("drift_scope", "high_risk_proactive_retrain", "labels_plentiful", "human_approval"),
                 id="high_risk_global->retrain_with_approval"),
    pytest.param(evidence(GLOBAL, HIGH_RISK, drift_severity_score=0.2), {}, "retrain", True,
                 ("high_risk_proactive_retrain", "labels_plentiful", "human_approval"),
                 id="high_risk_retrains_proactively_below_normal_threshold"),
    pytest.param(evidence(GLOBAL, drift_severity_score=0.2), {}, "none", False, (),
                 id="low_risk_same_evidence->none"),
    pytest.param(evidence(LOCAL, HIGH_RISK), {}, "fine_tune", True, ("drift_scope", "human_approval"),
                 id="high_risk_local->fine_tune_with_approval"),
    pytest.param(evidence(GLOBAL, HIGH_RISK), {"risk__high_risk_requires_approval": False}, "retrain", False,
                 ("drift_scope", "high_risk_proactive_retrain", "labels_plentiful"),
                 id="high_risk_approval_switched_off"),
    pytest.param(evidence(GLOBAL, HIGH_RISK, RETRAIN_OVER_BUDGET), {}, "escalate_to_human", True,
                 ("drift_scope", "high_risk_proactive_retrain", "labels_plentiful", "compute_budget"),
                 id="high_risk_global_over_budget->escalate_not_patch"),
    pytest.param(evidence(LOCAL), {"jurisdiction__signoff_regions": ["south"]}, "fine_tune", True,
                 ("drift_scope", "human_approval"), id="signoff_region_affected->approval"),
    pytest.param(evidence(LOCAL), {"jurisdiction__signoff_regions": ["north"]}, "fine_tune", False,
                 ("drift_scope",), id="signoff_region_not_affected->no_approval"),
    pytest.param(evidence(GLOBAL, SCARCE_LABELS), {}, "fine_tune", False, ("drift_scope", "labels_scarce"),
                 id="scarce_labels_global->fine_tune_per_config"),
    pytest.param(evidence(GLOBAL, SCARCE_LABELS), {"labels__when_scarce_for_retrain": "escalate_to_human"},
                 "escalate_to_human", True, ("drift_scope", "labels_scarce"),
                 id="scarce_labels_global->escalate_per_config"),
    pytest.param(evidence(GLOBAL, label_coverage_recent=0.2), {}, "fine_tune", False,
                 ("drift_scope", "labels_scarce"), id="unrepresentative_labels_global->fine_tune"),
    pytest.param(evidence(GLOBAL, NO_LABELS), {}, "escalate_to_human", True, ("drift_scope", "labels_scarce"),
                 id="no_labels_strong_evidence->escalate"),
    pytest.param(evidence(LOCAL, NO_LABELS), {}, "none", False, ("drift_scope", "labels_scarce"),
                 id="no_labels_weak_evidence->wait"),
    pytest.param(evidence(architecture_change_required=True), {}, "retrain", False,
                 ("architecture_change", "labels_plentiful"), id="architecture_change->retrain"),
    pytest.param(evidence(SCARCE_LABELS, architecture_change_required=True), {}, "escalate_to_human", True,
                 ("architecture_change", "labels_scarce"), id="architecture_change_scarce_labels->escalate"),
    pytest.param(evidence(GLOBAL, rapid_rollback_needed=True), {}, "fine_tune", False,
                 ("drift_scope", "rapid_rollback"), id="rapid_rollback_global->fine_tune"),
    pytest.param(evidence(rapid_rollback_needed=True), {}, "fine_tune", False, ("rapid_rollback",),
                 id="rapid_rollback_alone->fine_tune"),
    pytest.param(evidence(rapid_rollback_needed=True, architecture_change_required=True), {}, "retrain", False,
                 ("architecture_change", "rapid_rollback", "labels_plentiful"),
                 id="rapid_rollback_cannot_replace_architecture_change->retrain"),
    pytest.param(evidence(LOCAL, rapid_rollback_needed=True, fine_tunes_since_full_retrain=4), {}, "retrain", False,
                 ("drift_scope", "rapid_rollback", "technical_debt", "labels_plentiful"),
                 id="rapid_rollback_with_debt->retrain"),
    pytest.param(evidence(GLOBAL, CONCEPT, production_model_exists=False), {}, "retrain", False,
                 ("bootstrap", "labels_plentiful"), id="no_production_model->bootstrap_retrain"),
    pytest.param(evidence(SCARCE_LABELS, production_model_exists=False, label_coverage_recent=0.0), {}, "none",
                 False, ("bootstrap", "labels_scarce"), id="bootstrap_waits_for_labels"),
    pytest.param(evidence(RETRAIN_OVER_BUDGET, production_model_exists=False), {}, "escalate_to_human", True,
                 ("bootstrap", "labels_plentiful", "compute_budget"), id="bootstrap_over_budget->escalate"),
]


@pytest.mark.parametrize(("case", "config_overrides", "action", "requires_approval", "fired_rules"), CASES)
def test_decision_table(case: Evidence, config_overrides: dict[str, Any], action: str,
                        requires_approval: bool, fired_rules: tuple[str, ...]) -> None:
    config = config_with(**config_overrides)
    decision = decide(case, config)
    assert (decision.action, decision.requires_approval, decision.fired_rules) == \
        (action, requires_approval, fired_rules)
    # Explainable: exactly one reason per fired rule, in order, each naming its rule.
    assert len(decision.reasons) == len(decision.fired_rules)
    for rule, reason in zip(decision.fired_rules, decision.reasons):
        assert reason.startswith(f"{rule}: ") and len(reason) > len(rule) + 20
    assert decision.policy_version == config.policy_version


@pytest.mark.parametrize(("case", "rule", "fragments"), [
    pytest.param(evidence(LOCAL), "drift_scope", ("local", "region=south", "0.45", ">= 0.3"), id="drift_scope"),
    pytest.param(evidence(CONCEPT), "concept_drift", ("P(y|X)", "0.05", ">= 0.01"), id="concept_drift"),
    pytest.param(evidence(metric_drop=0.03), "falling_metric", ("0.03", ">= 0.02", "< 0.08"), id="falling_metric"),
    pytest.param(evidence(COMPLAINTS), "rising_complaints", ("2.5x", ">= 1.5x"), id="rising_complaints"),
    pytest.param(evidence(unseen_category_share=0.12), "unseen_categories", ("12%", ">= 5%"), id="unseen"),
    pytest.param(evidence(new_labels_since_training=25_000), "label_accumulation", ("25000", ">= 20000"),
                 id="label_accumulation"),
    pytest.param(evidence(production_model_age_days=45.0), "staleness", ("45 days", "> 30 days"), id="staleness"),
    pytest.param(evidence(LOCAL, fine_tunes_since_full_retrain=3), "technical_debt", ("3 consecutive", ">= 3"),
                 id="technical_debt_count"),
    pytest.param(evidence(LOCAL, fine_tune_divergence=0.4), "technical_debt", ("0.4", "> 0.25"),
                 id="technical_debt_divergence"),
    pytest.param(evidence(GLOBAL), "labels_plentiful", ("8000", ">= 5000", "80%", ">= 50%"), id="labels_plentiful"),
    pytest.param(evidence(GLOBAL, SCARCE_LABELS), "labels_scarce", ("1000", "< 5000"), id="labels_scarce"),
    pytest.param(evidence(GLOBAL, NO_LABELS), "labels_scarce", ("0 labelled rows", "< 500", "severity 0.8 >= 0.6"),
                 id="labels_none_strong"),
    pytest.param(evidence(GLOBAL, RETRAIN_OVER_BUDGET), "compute_budget", ("600 cpu_seconds", "100 cpu_seconds",
                                                                           "60 cpu_seconds"), id="compute_budget"),
    pytest.param(evidence(GLOBAL, HIGH_RISK, drift_severity_score=0.2), "high_risk_proactive_retrain",
                 ("0.2", ">= 0.15", "rigorous validation"), id="high_risk"),
    pytest.param(evidence(LOCAL), "human_approval", ("south", "sign-off"), id="jurisdiction"),
    pytest.param(evidence(GLOBAL, rapid_rollback_needed=True), "rapid_rollback", ("instead of retrain",),
                 id="rapid_rollback"),
])
def test_reasons_name_the_evidence_and_the_threshold(case: Evidence, rule: str, fragments: tuple[str, ...]) -> None:
    decision = decide(case, config_with(jurisdiction__signoff_regions=["south"]))
    reason = decision.reasons[decision.fired_rules.index(rule)]
    for fragment in fragments:
        assert fragment in reason, f"{fragment!r} missing from {reason!r}"


def test_cost_and_budget_of_the_chosen_action() -> None:
    config = config_with()
    retrain = decide(evidence(GLOBAL), config)
    assert (retrain.estimated_cost, retrain.budget_left_after, retrain.cost_unit) == (600.0, 2_400.0, "cpu_seconds")
    fallback = decide(evidence(GLOBAL, RETRAIN_OVER_BUDGET), config)
    assert (fallback.wanted_action, fallback.action) == ("retrain", "fine_tune")
    assert (fallback.estimated_cost, fallback.budget_left_after) == (60.0, 40.0)
    idle = decide(evidence(), config)
    assert (idle.estimated_cost, idle.budget_left_after) == (0.0, 3_000.0)


def test_measured_costs_replace_the_configured_defaults() -> None:
    measured = evidence(GLOBAL, compute_budget_left=500.0, retrain_cost_estimate=450.0, fine_tune_cost_estimate=20.0)
    decision = decide(measured, config_with())
    assert (decision.action, decision.estimated_cost, decision.budget_left_after) == ("retrain", 450.0, 50.0)
    too_dear = decide(dataclasses.replace(measured, retrain_cost_estimate=800.0), config_with())
    assert (too_dear.action, too_dear.estimated_cost) == ("fine_tune", 20.0)


def test_compute_budget_left_uses_the_period_budget() -> None:
    config = config_with(cost__budget_per_period=1_000.0)
    assert compute_budget_left(250.0, config) == 750.0
    assert compute_budget_left(1_500.0, config) == -500.0
    with pytest.raises(ValueError, match="spent_in_period"):
        compute_budget_left(-1.0, config)


def test_evidence_ids_are_a_read_only_copy() -> None:
    ids = {"drift_report_id": "dr-7"}
    frozen = evidence(evidence_ids=ids)
    ids["drift_report_id"] = "changed"
    assert frozen.evidence_ids["drift_report_id"] == "dr-7"
    with pytest.raises(TypeError):
        frozen.evidence_ids["drift_report_id"] = "x"  # type: ignore[index]


@pytest.mark.parametrize(("field_name", "value"), [
    ("drift_scope", "regional"),
    ("drift_severity_level", "severe"),
    ("risk_tier", "medium"),
    ("drift_severity_score", 1.2),
    ("unseen_category_share", -0.1),
    ("label_coverage_recent", float("nan")),
    ("metric_drop", float("inf")),
    ("complaint_rate_ratio", -1.0),
    ("production_model_age_days", "old"),
    ("new_labels_since_training", -5),
    ("labelled_rows_new_regime", 10.5),
    ("fine_tunes_since_full_retrain", True),
    ("fine_tune_divergence", -0.1),
    ("retrain_cost_estimate", -1.0),
    ("concept_drift_detected", 1),
    ("production_model_exists", "yes"),
    ("affected_segments", "region=south"),
    ("drifted_features", ("price", 3)),
    ("evidence_ids", {"drift_report_id": 42}),
])
def test_invalid_evidence_raises_naming_the_field(field_name: str, value: Any) -> None:
    with pytest.raises(ValueError, match=f"'{field_name}'"):
        evidence(**{field_name: value})


def test_lists_are_accepted_and_stored_as_tuples() -> None:
    case = evidence(affected_segments=["region=south"], drifted_features=["price"], affected_regions=["south"])
    assert case.affected_segments == ("region=south",) and case.affected_regions == ("south",)


def test_decide_rejects_arguments_of_the_wrong_kind() -> None:
    with pytest.raises(ValueError, match="Evidence"):
        decide({"drift_scope": "local"}, config_with())  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="PolicyConfig"):
        decide(STABLE, shipped_raw())  # type: ignore[arg-type]


# --- cost-aware timing, cool-down, scale-free thresholds, regime window ----------------------------------

# Measured costs (cpu-s): at a price of 0.005 per error a retrain pays from 200 avoidable errors,
# a fine-tune from 40.
CONFIG = config_with(avoidable_loss__price_per_error=0.005)
MEASURED = dict(retrain_cost_estimate=1.0, fine_tune_cost_estimate=0.2, avoidable_rows=2_000)

COST_CASES = [
    pytest.param(evidence(MEASURED, avoidable_errors=199.0), "none", (), id="below retrain cost->none"),
    pytest.param(evidence(MEASURED, avoidable_errors=200.0), "retrain", ("avoidable_loss", "labels_plentiful"),
                 id="at retrain cost->retrain"),
    pytest.param(evidence(MEASURED, LOCAL, avoidable_errors=40.0), "fine_tune", ("avoidable_loss", "drift_scope"),
                 id="local shift pays a fine-tune->fine_tune"),
    pytest.param(evidence(MEASURED, LOCAL, avoidable_errors=39.0), "none", ("drift_scope", "cost_aware_timing"),
                 id="local shift not yet worth a fine-tune->wait"),
    pytest.param(evidence(MEASURED, GLOBAL, avoidable_errors=100.0), "none", ("drift_scope", "cost_aware_timing"),
                 id="global shift not yet worth a retrain->wait"),
    pytest.param(evidence(MEASURED, CONCEPT, avoidable_errors=300.0), "retrain",
                 ("avoidable_loss", "concept_drift", "falling_metric", "labels_plentiful"), id="concept pays->retrain"),
    pytest.param(evidence(MEASURED, GLOBAL, avoidable_errors=0.0, production_model_age_days=40.0), "fine_tune",
                 ("drift_scope", "staleness", "cost_aware_timing"), id="staleness is a mandate, drift waits"),
    pytest.param(evidence(MEASURED, avoidable_errors=0.0, new_labels_since_training=20_000), "fine_tune",
                 ("label_accumulation",), id="slow gain: accumulated labels->cheap fine-tune"),
    pytest.param(evidence(MEASURED, avoidable_errors=500.0, rejected_path="retrain"), "retrain",
                 ("avoidable_loss", "labels_plentiful"), id="new avoidable loss after a rejection->retrain again"),
    pytest.param(evidence(MEASURED, avoidable_errors=0.0, rejected_path="fine_tune", new_labels_since_training=20_000,
                          labels_since_rejection=2_000), "none", ("label_accumulation", "cool_down"),
                 id="rejected fine-tune, no new evidence->cool down"),
    pytest.param(evidence(MEASURED, avoidable_errors=0.0, rejected_path="fine_tune", new_labels_since_training=40_000,
                          labels_since_rejection=20_000), "fine_tune", ("label_accumulation",),
                 id="rejected fine-tune, a new accumulation of labels->fine_tune"),
    pytest.param(evidence(MEASURED, GLOBAL), "retrain", ("drift_scope", "labels_plentiful"),
                 id="avoidable loss not measured->drift rules act as before"),
]


@pytest.mark.parametrize(("case", "action", "fired"), COST_CASES)
def test_cost_aware_decision_table(case: Evidence, action: str, fired: tuple[str, ...]) -> None:
    decision = decide(case, CONFIG)
    assert (decision.action, decision.fired_rules) == (action, fired)


def test_cost_aware_reasons_speak_plain_language() -> None:
    decision = decide(evidence(MEASURED, LOCAL, avoidable_errors=52.0), CONFIG)
    assert decision.reasons[0] == (
        "avoidable_loss: about 52 avoidable errors in 2000 labelled rows since the last update, worth 0.26 "
        "cpu_seconds at the configured price of 0.005 per error; a fine-tune costs 0.2 cpu_seconds; local shift in "
        "region=south, so fine-tune")
    waiting = decide(evidence(MEASURED, GLOBAL, avoidable_errors=100.0), CONFIG)
    assert "drift_scope asked for a retrain, which costs 1 cpu_seconds: not worth it yet, wait" in waiting.reasons[-1]
    cooled = decide(evidence(MEASURED, avoidable_errors=0.0, rejected_path="fine_tune",
                             new_labels_since_training=20_000, labels_since_rejection=2_000), CONFIG)
    assert "a fine-tune candidate was rejected since the last update" in cooled.reasons[-1]


@pytest.mark.parametrize(("typical", "rows", "action"), [
    (200, 499, "fine_tune"), (200, 500, "retrain"), (100_000, 249_999, "fine_tune"), (100_000, 250_000, "retrain"),
])
def test_label_thresholds_scale_with_the_typical_batch(typical: int, rows: int, action: str) -> None:
    """2.5 batches' worth for a retrain: the same file on 200-row and 100k-row batches."""
    case = evidence(GLOBAL, typical_batch_rows=typical, labelled_rows_new_regime=rows)
    assert decide(case, CONFIG).action == action


def test_a_retrain_carries_the_regime_window_and_its_reason() -> None:
    case = evidence(MEASURED, avoidable_errors=300.0, regime_window_start=42,
                    regime_window_reason="the new regime since period 42 (3 batches)")
    decision = decide(case, CONFIG)
    assert (decision.training_window_start, decision.training_window_reason) == (
        42, "the new regime since period 42 (3 batches)")
    assert decide(dataclasses.replace(case, avoidable_errors=0.0), CONFIG).training_window_start is None


def test_on_evidence_timing_switches_the_cost_aware_trigger_off() -> None:
    not_yet_worth_it = evidence(MEASURED, LOCAL, avoidable_errors=39.0)
    assert decide(not_yet_worth_it, CONFIG).fired_rules == ("drift_scope", "cost_aware_timing")
    on_evidence = config_with(avoidable_loss__price_per_error=0.005, avoidable_loss__timing="on_evidence")
    decision = decide(not_yet_worth_it, on_evidence)
    assert (decision.action, decision.fired_rules) == ("fine_tune", ("drift_scope",))
    assert decide(evidence(MEASURED, avoidable_errors=10_000.0), on_evidence).action == "none"
