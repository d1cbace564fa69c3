"""The evidence rules on plain values: the meaning both readers (warehouse and replay) rely on."""

import pytest

from ct_assets.core.data import schema
from ct_assets.core.decision import evidence_rules as rules
from ct_assets.core.decision.policy_config import load_policy_config

CONFIG = load_policy_config()
THRESHOLD = CONFIG.drift.min_severity_score


@pytest.mark.parametrize(("scope", "severity", "degraded", "shifted"), [
    ("local", THRESHOLD, False, True),
    ("global", THRESHOLD - 0.01, False, False),
    ("none", 1.0, False, False),
    ("none", 0.0, True, True),
])
def test_a_period_is_shifted_by_drift_past_the_threshold_or_by_degraded_concept(scope, severity, degraded, shifted):
    assert rules.is_shifted(scope, severity, degraded, CONFIG) is shifted


@pytest.mark.parametrize(("shifted", "newest", "start"), [
    (set(), 4, None),
    ({4}, 4, 4),
    ({1, 2, 3, 4}, 4, 1),
    ({1, 3, 4}, 4, 3),  # a gap ends the run
    ({1, 2, 3}, 4, None),  # the newest period is not shifted
])
def test_shift_start_is_the_first_period_of_the_unbroken_run_ending_now(shifted, newest, start):
    assert rules.shift_start(shifted, newest) == start


@pytest.mark.parametrize(("change", "drop"), [
    (None, 0.0),
    (rules.MetricChange(0.90, 0.80, ci_high=-0.02), pytest.approx(0.10)),
    (rules.MetricChange(0.90, 0.80, ci_high=0.0), 0.0),  # the interval touches zero: noise
    (rules.MetricChange(0.90, 0.95, ci_high=0.08), 0.0),
])
def test_a_metric_drop_counts_only_when_its_interval_lies_wholly_below_zero(change, drop):
    assert rules.metric_drop(change) == drop


def test_cost_estimate_is_the_median_of_the_newest_measured_runs():
    newest = [10.0, 30.0, 20.0, 40.0, 50.0][:rules.COST_HISTORY_RUNS]
    assert rules.cost_estimate([*newest, 1_000.0, 1_000.0]) == 30.0  # older runs do not count
    assert rules.cost_estimate([7.0]) == 7.0
    assert rules.cost_estimate([]) is None


@pytest.mark.parametrize(("labelled", "orders", "coverage"), [(0, 0, 0.0), (50, 100, 0.5), (120, 100, 1.0)])
def test_label_coverage_is_a_share_capped_at_one(labelled, orders, coverage):
    assert rules.label_coverage(labelled, orders) == coverage


def test_model_age_never_goes_negative():
    assert rules.model_age(10, 7) == 3.0
    assert rules.model_age(7, 9) == 0.0


@pytest.mark.parametrize(("scope", "segments", "regions"), [
    ("none", ("region=south",), ()),
    ("local", ("region=south", "region=west"), ("south", "west")),
    ("local", ("region=south", "category=toys"), schema.REGIONS),  # another dimension reaches every region
    ("global", (), schema.REGIONS),
])
def test_affected_regions(scope, segments, regions):
    assert rules.affected_regions(scope, segments) == regions


def test_neutral_inputs_give_neutral_evidence_without_a_production_model():
    evidence = rules.build_evidence(CONFIG)
    assert (evidence.drift_scope, evidence.metric_drop, evidence.complaint_rate_ratio) == ("none", 0.0, 1.0)
    assert not evidence.production_model_exists
    assert (evidence.production_model_age_days, evidence.fine_tunes_since_full_retrain) == (0.0, 0)
    assert evidence.compute_budget_left == CONFIG.cost.budget_per_period
    assert evidence.retrain_cost_estimate is None and evidence.fine_tune_cost_estimate is None


def test_build_evidence_applies_every_rule():
    evidence = rules.build_evidence(
        CONFIG, drift=rules.DriftSummary("local", 0.5, "medium", ("region=south",), ("price",), 0.02),
        concept=rules.ConceptSummary(degraded=True, covariate_drift_small=True,
                                     auc=rules.MetricChange(0.9, 0.85, ci_high=-0.01)),
        labels=rules.LabelCounts(since_training=900, since_shift_start=None, recent_labelled=30, recent_orders=60),
        production=rules.ProductionSummary(age_days=3.0, fine_tunes_since_full_retrain=2, fine_tune_divergence=0.1),
        cost=rules.CostHistory(spent_in_period=CONFIG.cost.budget_per_period + 5.0, fine_tune_costs=(4.0, 2.0)),
        regions=("south",), inputs=rules.PolicyInputs(risk_tier="high", evidence_ids={"drift_report_id": "dr-1"}))
    assert evidence.metric_drop == pytest.approx(0.05)
    assert evidence.labelled_rows_new_regime == 900  # no ongoing shift: the new regime is everything since training
    assert evidence.label_coverage_recent == 0.5
    assert evidence.compute_budget_left == -5.0
    assert (evidence.retrain_cost_estimate, evidence.fine_tune_cost_estimate) == (None, 3.0)
    assert (evidence.fine_tunes_since_full_retrain, evidence.fine_tune_divergence) == (2, 0.1)
    assert (evidence.risk_tier, evidence.affected_regions, dict(evidence.evidence_ids)) == \
        ("high", ("south",), {"drift_report_id": "dr-1"})
    shifted = rules.build_evidence(CONFIG, labels=rules.LabelCounts(since_training=900, since_shift_start=200))
    assert shifted.labelled_rows_new_regime == 200


@pytest.mark.parametrize(("rows", "error", "reference", "excess"), [
    (200, 0.10, 0.10, 0.0),  # at the reference
    (200, 0.14, 0.10, 0.0),  # 28 errors vs 20 +- 8.5: within the noise
    (200, 0.20, 0.10, 40 - 20 - 2 * 18 ** 0.5),
    (100_000, 0.101, 0.10, 100 - 2 * 9_000 ** 0.5),  # 0.1 point worse is noise even on 100k rows
    (100_000, 0.11, 0.10, 1_000 - 2 * 9_000 ** 0.5),
])
def test_excess_errors_count_only_beyond_the_batch_noise(rows, error, reference, excess):
    assert rules.excess_errors(rules.BatchError(0, rows, error, reference), 2.0) == pytest.approx(max(0.0, excess))


def test_avoidable_errors_accumulate_since_the_later_of_update_and_rejection():
    config = load_policy_config()
    batches = [rules.BatchError(period, 1_000, 0.2, 0.1) for period in (5, 6, 7)]  # 81 avoidable errors each
    production = rules.ProductionSummary(age_days=3.0, fine_tunes_since_full_retrain=0)
    labels = rules.LabelCounts(since_training=3_000, typical_batch_rows=1_000, newest_period=7)
    fresh = rules.build_evidence(config, labels=labels, production=production,
                                 errors=rules.ErrorHistory(batches, measured=True))
    assert (round(fresh.avoidable_errors), fresh.avoidable_rows, fresh.rejected_path) == (243, 3_000, None)
    rejected = rules.build_evidence(config, labels=labels, production=production,
                                    errors=rules.ErrorHistory(batches, True, "retrain", 6, 1_000))
    assert (round(rejected.avoidable_errors), rejected.avoidable_rows, rejected.rejected_path) == (81, 1_000, "retrain")
    unmeasured = rules.build_evidence(config, labels=labels, production=production)
    assert unmeasured.avoidable_errors is None and unmeasured.typical_batch_rows == 1_000


@pytest.mark.parametrize(("errors", "shift_start", "window"), [
    ((0.1, 0.1, 0.3), None, (5, "the new regime since period 7, topped up with older rows to 3 batches")),
    ((0.3, 0.3, 0.3), 6, (5, "the new regime since period 5 (3 batches)")),  # excess run before the drift start
    ((0.1, 0.1, 0.1), 4, (4, "the new regime since period 4 (4 batches)")),  # no excess: the detected shift
    ((0.1, 0.1, 0.1), None, (None, "")),  # no new regime: the default trailing window
])
def test_the_regime_window_starts_at_the_new_regime_topped_up_to_a_retrain_minimum(errors, shift_start, window):
    config = load_policy_config()  # min_batches_for_retrain 2.5 -> 3 batches
    batches = [rules.BatchError(period, 1_000, error, 0.1) for period, error in zip((5, 6, 7), errors)]
    labels = rules.LabelCounts(since_training=3_000, typical_batch_rows=1_000, newest_period=7,
                               shift_start_period=shift_start)
    evidence = rules.build_evidence(config, labels=labels, errors=rules.ErrorHistory(batches, measured=True),
                                    production=rules.ProductionSummary(age_days=3.0, fine_tunes_since_full_retrain=0))
    assert (evidence.regime_window_start, evidence.regime_window_reason) == window
