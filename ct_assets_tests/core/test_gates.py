import json

import numpy as np
import pandas as pd
import pytest

from ct_assets.core.data import schema
from ct_assets.core.release.gates import (
    calibration_gate,
    fairness_gate,
    leakage_gate,
)
from ct_assets.core.release.holdout_gates import holdout_gate, non_inferiority_gate, resolvable_margin
from ct_assets.core.release.metrics import expected_calibration_error, roc_auc, single_feature_aucs


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


@pytest.fixture(scope="module")
def scored() -> dict[str, np.ndarray]:
    """Labels drawn from a known risk; 'good' scores see the risk, 'weak' scores see it through noise."""
    rng = np.random.default_rng(0)
    n = 4000
    risk = rng.normal(size=n) * 1.5 - 1.0
    y = (rng.random(n) < sigmoid(risk)).astype(np.int64)
    good = sigmoid(risk)
    weak = sigmoid(0.6 * risk + rng.normal(scale=1.2, size=n) - 0.4)
    groups = np.where(rng.random(n) < 0.5, "group_a", "group_b")
    return {"y": y, "good": good, "weak": weak, "groups": groups, "risk": risk}


def test_metrics_agree_with_sklearn(scored: dict[str, np.ndarray]) -> None:
    from sklearn.metrics import accuracy_score, log_loss, roc_auc_score

    y, weak = scored["y"], scored["weak"]
    tied = np.round(weak, 1)  # many ties
    assert roc_auc(y, weak) == pytest.approx(roc_auc_score(y, weak), abs=1e-12)
    assert roc_auc(y, tied) == pytest.approx(roc_auc_score(y, tied), abs=1e-12)
    assert np.isnan(roc_auc(np.zeros(5, dtype=np.int64), np.linspace(0, 1, 5)))
    result = holdout_gate(y, weak, weak.copy(), metric="log_loss", n_boot=5)
    assert result.metrics["candidate_log_loss"] == pytest.approx(log_loss(y, weak))
    result = holdout_gate(y, weak, weak.copy(), metric="accuracy", n_boot=5)
    assert result.metrics["candidate_accuracy"] == pytest.approx(accuracy_score(y, weak >= 0.5))


def test_holdout_bootstraps_when_there_is_no_production_model(scored: dict[str, np.ndarray]) -> None:
    result = holdout_gate(scored["y"], scored["weak"], None)
    assert result.passed and "no production model" in result.reason
    assert result.metrics["candidate_auc"] > 0.6


def test_holdout_equal_models_do_not_pass(scored: dict[str, np.ndarray]) -> None:
    result = holdout_gate(scored["y"], scored["good"], scored["good"].copy(), n_boot=50)
    assert not result.passed
    assert result.metrics["improvement"] == 0.0
    assert "below the margin" in result.reason


@pytest.mark.parametrize("metric", ["auc", "log_loss", "accuracy"])
def test_holdout_clearly_better_candidate_passes(scored: dict[str, np.ndarray], metric: str) -> None:
    result = holdout_gate(scored["y"], scored["good"], scored["weak"], metric=metric, n_boot=100)
    assert result.passed, result.reason
    assert result.metrics["improvement"] >= 0.01 and result.metrics["ci_low"] > 0
    reverse = holdout_gate(scored["y"], scored["weak"], scored["good"], metric=metric, n_boot=100)
    assert not reverse.passed and reverse.metrics["improvement"] < 0


def test_holdout_gain_that_may_be_noise_does_not_pass() -> None:
    # Two equally informative but differently noisy scorers on a small holdout: the candidate's
    # observed gain clears a zero margin, yet its bootstrap interval straddles 0.
    rng = np.random.default_rng(3)
    n = 300
    risk = rng.normal(size=n)
    y = (rng.random(n) < sigmoid(risk)).astype(np.int64)
    candidate = sigmoid(risk + rng.normal(scale=1.0, size=n))
    production = sigmoid(risk + rng.normal(scale=1.0, size=n))
    result = holdout_gate(y, candidate, production, margin=0.0, relative=False, n_boot=200, seed=1)
    assert result.metrics["improvement"] > 0
    assert not result.passed
    assert result.metrics["ci_low"] <= 0 < result.metrics["ci_high"]
    assert "may be noise" in result.reason


def test_holdout_margin_is_relative_by_default(scored: dict[str, np.ndarray]) -> None:
    result = holdout_gate(scored["y"], scored["good"], scored["weak"], n_boot=50)
    cand, prod = result.metrics["candidate_auc"], result.metrics["production_auc"]
    assert result.metrics["improvement"] == pytest.approx((cand - prod) / prod)
    too_demanding = holdout_gate(scored["y"], scored["good"], scored["weak"], margin=0.5, n_boot=50)
    assert not too_demanding.passed


def test_holdout_bad_inputs(scored: dict[str, np.ndarray]) -> None:
    with pytest.raises(ValueError, match="metric"):
        holdout_gate(scored["y"], scored["good"], None, metric="f1")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="scores for"):
        holdout_gate(scored["y"], scored["good"][:10], None)
    with pytest.raises(ValueError, match="both classes"):
        holdout_gate(np.zeros(10), np.full(10, 0.1), None)


def test_fairness_fails_a_candidate_worse_for_one_group(scored: dict[str, np.ndarray]) -> None:
    y, good, groups = scored["y"], scored["good"], scored["groups"]
    rng = np.random.default_rng(1)
    worse_for_b = np.where(groups == "group_b", sigmoid(scored["risk"] * 0.3 + rng.normal(size=len(y))), good)
    result = fairness_gate(y, worse_for_b, good, groups, tolerance=0.02)
    assert not result.passed
    assert "group group_b" in result.reason and "group group_a" not in result.reason
    assert result.metrics["regression_by_group"]["group_b"] > 0.02
    assert result.metrics["regression_by_group"]["group_a"] == pytest.approx(0.0)
    assert json.loads(json.dumps(result.to_dict()))["name"] == "fairness"


def test_fairness_passes_an_equally_fair_candidate(scored: dict[str, np.ndarray]) -> None:
    result = fairness_gate(scored["y"], scored["good"], scored["good"].copy(), scored["groups"])
    assert result.passed, result.reason
    assert result.metrics["gap_widening"] == pytest.approx(0.0)
    first = fairness_gate(scored["y"], scored["good"], None, scored["groups"])
    assert first.passed and set(first.metrics["candidate_by_group"]) == {"group_a", "group_b"}


def test_fairness_fails_when_the_gap_between_groups_widens(scored: dict[str, np.ndarray]) -> None:
    y, good, weak, groups = scored["y"], scored["good"], scored["weak"], scored["groups"]
    # Production is weak for everyone; the candidate improves only group_a: nobody regresses, the gap widens.
    better_for_a = np.where(groups == "group_a", good, weak)
    result = fairness_gate(y, better_for_a, weak, groups, tolerance=0.02, max_gap_widening=0.02)
    assert not result.passed
    assert "gap widens" in result.reason and "regresses" not in result.reason


def test_fairness_skips_groups_too_small_to_judge(scored: dict[str, np.ndarray]) -> None:
    groups = scored["groups"].copy()
    groups[:10] = "group_c"
    result = fairness_gate(scored["y"], scored["good"], scored["good"].copy(), groups, min_group_size=30)
    assert result.passed
    assert result.metrics["skipped_groups"] == ["group_c"]
    assert "group_c" not in result.metrics["candidate_by_group"]


def test_non_inferiority_passes_an_equal_candidate_and_fails_a_clearly_worse_one(scored) -> None:
    y, good, weak = scored["y"], scored["good"], scored["weak"]
    equal = non_inferiority_gate(y, good, good.copy(), n_boot=50)
    assert equal.passed and equal.metrics["improvement"] == 0.0
    assert "not worse by more than the margin" in equal.reason
    worse = non_inferiority_gate(y, weak, good, n_boot=50)
    assert not worse.passed and worse.metrics["ci_low"] <= -worse.metrics["margin"]
    assert "may be worse by more than the margin" in worse.reason
    assert non_inferiority_gate(y, weak, None).passed  # no production model: bootstrap


def test_non_inferiority_at_its_margin(scored) -> None:
    """A fixed margin (floor = cap) either side of the candidate's loss: passes above it, fails below."""
    y, good, weak = scored["y"], scored["good"], scored["weak"]
    loss = roc_auc(y, good) - roc_auc(y, weak)
    wide = non_inferiority_gate(y, weak, good, margin_floor=loss + 0.05, max_margin=loss + 0.05, n_boot=50)
    narrow = non_inferiority_gate(y, weak, good, margin_floor=loss - 0.05, max_margin=loss - 0.05, n_boot=50)
    assert wide.passed and wide.metrics["margin"] == pytest.approx(loss + 0.05)
    assert not narrow.passed and narrow.metrics["margin"] == pytest.approx(loss - 0.05)


@pytest.mark.parametrize(("case", "rows", "floor", "cap", "bound"), [
    ("few rows: the margin is what they resolve", 300, 0.002, 0.2, "what 300 rows resolve"),
    ("many rows resolve finer than the floor", 4000, 0.05, 0.2, "the floor"),
    ("too few rows for the cap: capped", 300, 0.002, 0.005, "the cap"),
])
def test_non_inferiority_margin_is_no_finer_than_the_holdout_resolves(scored, case, rows, floor, cap, bound) -> None:
    y, good, weak = scored["y"][:rows], scored["good"][:rows], scored["weak"][:rows]
    result = non_inferiority_gate(y, good, weak, margin_floor=floor, max_margin=cap, n_boot=100)
    resolution = resolvable_margin(result.metrics["standard_error"], confidence=0.95, power=0.8)
    assert result.metrics["margin"] == pytest.approx(min(max(floor, resolution), cap)), case
    assert f"({bound}: bootstrap SE" in result.reason, case


def test_fewer_rows_resolve_a_coarser_margin(scored) -> None:
    y, good, weak = scored["y"], scored["good"], scored["weak"]
    small = non_inferiority_gate(y[:300], good[:300], weak[:300], margin_floor=0.0, max_margin=1.0, n_boot=100)
    large = non_inferiority_gate(y, good, weak, margin_floor=0.0, max_margin=1.0, n_boot=100)
    assert small.metrics["margin"] > 2 * large.metrics["margin"]
    assert resolvable_margin(0.01, 0.95, 0.8) == pytest.approx((1.959964 + 0.841621) * 0.01, rel=1e-5)


def orders_with_labels(n_rows: int, seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({column: rng.normal(size=n_rows) for column in schema.FEATURE_NUMERIC})
    labels = (rng.random(n_rows) < sigmoid(-1.5 + 1.0 * frame["discount"].to_numpy())).astype(np.int64)
    return frame, labels


def test_leakage_gate_passes_plausible_features() -> None:
    features, labels = orders_with_labels(3000, seed=0)
    result = leakage_gate(features, labels)
    assert result.passed, result.reason
    assert result.metrics["max_auc_feature"] == "discount"
    assert set(result.metrics["single_feature_auc"]) == set(schema.FEATURE_NUMERIC)


def test_leakage_gate_catches_a_feature_equal_to_the_label() -> None:
    features, labels = orders_with_labels(3000, seed=0)
    features["sensor_signal"] = labels.astype(float)  # the leakage_bug: the label copied into a feature
    result = leakage_gate(features, labels)
    assert not result.passed
    assert result.metrics["single_feature_auc"]["sensor_signal"] == pytest.approx(1.0)
    assert "sensor_signal" in result.reason and "discount" not in result.reason


def test_leakage_gate_catches_a_jump_against_the_reference() -> None:
    features, labels = orders_with_labels(3000, seed=0)
    reference = single_feature_aucs(features, labels)
    rng = np.random.default_rng(2)
    features["sensor_motion"] = labels + rng.normal(scale=0.8, size=len(labels))  # partial leak: AUC ~0.8
    assert leakage_gate(features, labels).passed  # below the absolute ceiling...
    result = leakage_gate(features, labels, reference_auc=reference, max_jump=0.15)
    assert not result.passed  # ...but far above its usual level
    assert "sensor_motion AUC jumped" in result.reason and "did not shift" in result.reason


def test_leakage_jump_on_a_feature_the_drift_report_saw_shift_is_covariate_shift() -> None:
    """A feature whose traffic moved (geography) may gain predictive power: drift, not leakage. A
    near-perfect feature stays leakage even when its distribution shifted (the leakage_bug does both)."""
    features, labels = orders_with_labels(3000, seed=0)
    reference = single_feature_aucs(features, labels)
    rng = np.random.default_rng(2)
    features["sensor_motion"] = labels + rng.normal(scale=0.8, size=len(labels))
    shifted = leakage_gate(features, labels, reference_auc=reference, shifted_features=("sensor_motion",))
    assert shifted.passed, shifted.reason
    assert "explained by the drift report's shift in sensor_motion" in shifted.reason
    other = leakage_gate(features, labels, reference_auc=reference, shifted_features=("discount",))
    assert not other.passed
    features["sensor_signal"] = labels.astype(float)
    copied = leakage_gate(features, labels, reference_auc=reference, shifted_features=("sensor_signal",))
    assert not copied.passed and "sensor_signal alone has AUC 1.0000" in copied.reason
    assert copied.threshold["shifted_features"] == ["sensor_signal"]


def test_leakage_gate_refuses_missing_columns_and_single_class() -> None:
    features, labels = orders_with_labels(100, seed=0)
    with pytest.raises(ValueError, match="missing columns.*sensor_signal"):
        leakage_gate(features.drop(columns="sensor_signal"), labels)
    with pytest.raises(ValueError, match="both classes"):
        leakage_gate(features, np.zeros(100))


def test_expected_calibration_error_values() -> None:
    y = np.array([0] * 80 + [1] * 20)
    assert expected_calibration_error(y, np.full(100, 0.2)) == pytest.approx(0.0)
    assert expected_calibration_error(y, np.full(100, 0.5)) == pytest.approx(0.3)


def test_calibration_gate_passes_equal_and_fails_overconfident(scored: dict[str, np.ndarray]) -> None:
    y, good = scored["y"], scored["good"]
    assert calibration_gate(y, good, good.copy()).passed
    assert calibration_gate(y, good, None).passed
    overconfident = sigmoid(4.0 * scored["risk"])  # same ranking, far too sure of itself
    result = calibration_gate(y, overconfident, good, max_ece_increase=0.02)
    assert not result.passed
    assert result.metrics["ece_increase"] > 0.02
    assert "worse by more than 0.02" in result.reason


def test_selection_bias_gate_warns_on_the_feedback_loop_scenario():
    from ct_assets.core.release.gates import selection_bias_gate
    from ct_assets.simulation.config import SimulatorConfig
    from ct_assets.simulation.generation import base_regime_probability, generate_day
    from ct_assets.simulation.scenarios import parse_timeline

    for spec, expect_pass in (("stable", True), ("feedback_loop", False)):
        config = SimulatorConfig(rows_per_day=4000, seed=2, timeline=parse_timeline(spec))
        batch = generate_day(config, 0)
        labelled = batch.events["event_id"].isin(batch.labels["event_id"]).to_numpy()
        gate = selection_bias_gate(labelled, base_regime_probability(batch.events, config))
        assert gate.passed is expect_pass, gate.reason
        assert gate.severity == "warning"
    assert "feedback loop" in gate.reason and gate.metrics["blocked_label_coverage"] == 0.0


def test_selection_bias_gate_without_production_or_blocked_rows_passes():
    from ct_assets.core.release.gates import selection_bias_gate

    assert selection_bias_gate([True, False], None).passed
    assert "too few" in selection_bias_gate([True] * 100, [0.1] * 100).reason


def test_non_regression_gate_allows_a_tolerance_and_fails_beyond_it():
    from ct_assets.core.release.holdout_gates import non_regression_gate

    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 2000)
    good = np.clip(y * 0.6 + rng.normal(0.2, 0.2, 2000), 0, 1)
    noisier = np.clip(y * 0.3 + rng.normal(0.35, 0.3, 2000), 0, 1)
    assert non_regression_gate(y, good, good).passed
    failed = non_regression_gate(y, noisier, good, tolerance=0.01, scope="rows outside region=south")
    assert not failed.passed and "on rows outside region=south" in failed.reason
    assert non_regression_gate(y, noisier, None).passed


def test_fairness_gap_cap_fails_a_candidate_that_leaves_one_group_badly_served(scored: dict[str, np.ndarray]) -> None:
    y, good, weak, groups = scored["y"], scored["good"], scored["weak"], scored["groups"]
    unfair = np.where(groups == "group_a", good, weak)  # serves group_b much worse than group_a
    # Production is just as unfair: nothing regresses or widens, yet the gap stays above the cap.
    result = fairness_gate(y, unfair, unfair.copy(), groups, max_gap=0.05)
    assert not result.passed and result.metrics["candidate_gap"] > 0.05
    assert "exceeds the cap 0.05" in result.reason and "group_b is served worst" in result.reason
    assert fairness_gate(y, unfair, unfair.copy(), groups).passed  # no cap: passes as before
    # A candidate that narrows production's gap by more than the tolerance is an improvement: it passes.
    half = np.where(groups == "group_a", good, sigmoid(0.8 * scored["risk"] + 0.3 * np.log(weak / (1 - weak))))
    narrowing = fairness_gate(y, half, unfair, groups, tolerance=0.02, max_gap=0.01)
    assert narrowing.metrics["candidate_gap"] < narrowing.metrics["production_gap"] - 0.02
    assert narrowing.passed, narrowing.reason
    with pytest.raises(ValueError, match="max_gap"):
        fairness_gate(y, good, good, groups, max_gap=-0.1)


def test_leakage_jump_under_detected_concept_drift_is_the_new_concept() -> None:
    """Concept drift (the serving model degraded) explains a jump; a leak leaves the old model as good."""
    features, labels = orders_with_labels(3000, seed=0)
    reference = single_feature_aucs(features, labels)
    features["sensor_motion"] = labels + np.random.default_rng(2).normal(scale=0.8, size=len(labels))
    assert not leakage_gate(features, labels, reference_auc=reference, shifted_features=()).passed
    result = leakage_gate(features, labels, reference_auc=reference, shifted_features=(), concept_drift=True)
    assert result.passed and "explained by the detected concept drift" in result.reason
    features["sensor_signal"] = labels.astype(float)
    assert not leakage_gate(features, labels, reference_auc=reference, concept_drift=True).passed
