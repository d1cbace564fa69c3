"""Concept drift: bootstrap CI on the production model's metric change, and P(y|X) vs P(X)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from ct_assets.core.monitoring.concept_drift import ConceptDriftConfig, detect_concept_drift
from ct_assets.core.monitoring.drift.report import build_drift_report
from ct_assets.core.monitoring.drift.types import DriftConfig

FEATURES = ("x0", "x1", "x2")


def labelled_window(seed: int, n_rows: int, flipped: bool = False) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """Features, labels and the production model's scores. The model learned the original relation;
    ``flipped`` draws labels from the reversed relation while the features keep their distribution."""
    rng = np.random.default_rng(seed)
    features = pd.DataFrame({name: rng.normal(size=n_rows) for name in FEATURES})
    logit = -1.0 + 1.5 * features["x0"].to_numpy() - 1.0 * features["x1"].to_numpy()
    model_scores = 1.0 / (1.0 + np.exp(-logit))
    truth = 1.0 / (1.0 + np.exp(logit + 2.0)) if flipped else model_scores
    labels = (rng.random(n_rows) < truth).astype(int)
    return features, labels, model_scores


def covariate_severity(reference: pd.DataFrame, current: pd.DataFrame) -> float:
    config = DriftConfig(numeric_features=FEATURES, categorical_features=(), segment_columns=(), multivariate=False)
    return build_drift_report(reference, current, config).severity


def test_flipped_label_relation_without_covariate_change_is_concept_drift() -> None:
    ref_x, ref_y, ref_p = labelled_window(1, 4_000)
    cur_x, cur_y, cur_p = labelled_window(2, 2_000, flipped=True)
    severity = covariate_severity(ref_x, cur_x)
    assert severity < 0.1  # P(X) did not move

    result = detect_concept_drift(ref_y, ref_p, cur_y, cur_p, covariate_severity=severity)
    assert result.verdict == "degraded" and result.concept_drift
    auc = result.metric("auc")
    assert auc.reference_value > 0.75 and auc.current_value < 0.3
    assert auc.ci_high < 0 and auc.ci_low <= auc.difference <= auc.ci_high
    assert result.metric("log_loss").degraded
    assert result.covariate_drift_small is True
    assert result.beyond_covariate  # P(y|X) changed beyond P(X)


def test_same_relation_is_stable() -> None:
    ref_x, ref_y, ref_p = labelled_window(1, 4_000)
    cur_x, cur_y, cur_p = labelled_window(3, 2_000)
    result = detect_concept_drift(ref_y, ref_p, cur_y, cur_p, covariate_severity=covariate_severity(ref_x, cur_x))
    assert result.verdict == "stable"
    assert not any(m.degraded or m.improved for m in result.metrics)
    assert all(m.ci_low < 0 < m.ci_high for m in result.metrics)
    assert not result.beyond_covariate


def test_degradation_with_large_covariate_drift_is_not_attributed_to_p_y_given_x() -> None:
    _, ref_y, ref_p = labelled_window(1, 4_000)
    _, cur_y, cur_p = labelled_window(2, 2_000, flipped=True)
    result = detect_concept_drift(ref_y, ref_p, cur_y, cur_p, covariate_severity=0.8)
    assert result.concept_drift
    assert result.covariate_drift_small is False and not result.beyond_covariate
    unknown = detect_concept_drift(ref_y, ref_p, cur_y, cur_p)
    assert unknown.covariate_drift_small is None and not unknown.beyond_covariate


def test_auc_matches_sklearn_with_tied_scores() -> None:
    from sklearn.metrics import log_loss, roc_auc_score

    _, ref_y, ref_p = labelled_window(4, 3_000)
    _, cur_y, cur_p = labelled_window(5, 3_000)
    ref_p, cur_p = np.round(ref_p, 1), np.round(cur_p, 1)  # many ties
    result = detect_concept_drift(ref_y, ref_p, cur_y, cur_p)
    assert result.metric("auc").reference_value == pytest.approx(roc_auc_score(ref_y, ref_p), abs=1e-12)
    assert result.metric("auc").current_value == pytest.approx(roc_auc_score(cur_y, cur_p), abs=1e-12)
    assert result.metric("log_loss").current_value == pytest.approx(
        log_loss(cur_y, np.clip(cur_p, 1e-7, 1 - 1e-7)), rel=1e-9
    )
    assert result.metric("error_rate").current_value == pytest.approx(np.mean((cur_p >= 0.5) != cur_y))


def test_bootstrap_is_seeded() -> None:
    _, ref_y, ref_p = labelled_window(1, 1_000)
    _, cur_y, cur_p = labelled_window(2, 1_000, flipped=True)
    first = detect_concept_drift(ref_y, ref_p, cur_y, cur_p, ConceptDriftConfig(seed=3))
    again = detect_concept_drift(ref_y, ref_p, cur_y, cur_p, ConceptDriftConfig(seed=3))
    other = detect_concept_drift(ref_y, ref_p, cur_y, cur_p, ConceptDriftConfig(seed=4))
    assert first == again
    assert first.metric("auc").ci_low != other.metric("auc").ci_low


def test_too_few_labels_or_one_class() -> None:
    _, ref_y, ref_p = labelled_window(1, 1_000)
    few = detect_concept_drift(ref_y, ref_p, ref_y[:50], ref_p[:50])
    assert few.verdict == "insufficient_labels" and few.metrics == () and "50" in few.reason

    negatives = ref_y == 0
    one_class = detect_concept_drift(ref_y, ref_p, ref_y[negatives], ref_p[negatives])
    assert [m.metric for m in one_class.metrics] == ["log_loss", "error_rate"]  # AUC needs both classes


def test_summary_is_flat_json_and_bad_inputs_are_rejected() -> None:
    _, ref_y, ref_p = labelled_window(1, 1_000)
    summary = detect_concept_drift(ref_y, ref_p, ref_y, ref_p).to_summary()
    json.dumps(summary, allow_nan=False)
    assert summary["verdict"] == "stable" and summary["auc.difference"] == 0.0

    with pytest.raises(ValueError, match="labels must be 0/1"):
        detect_concept_drift(ref_y + 1, ref_p, ref_y, ref_p)
    with pytest.raises(ValueError, match="scores"):
        detect_concept_drift(ref_y, ref_p[:-1], ref_y, ref_p)
    with pytest.raises(ValueError, match="probabilities"):
        detect_concept_drift(ref_y, ref_p * 2, ref_y, ref_p)
    with pytest.raises(ValueError, match="covariate_severity"):
        detect_concept_drift(ref_y, ref_p, ref_y, ref_p, covariate_severity=1.5)
    with pytest.raises(ValueError, match="n_bootstrap"):
        ConceptDriftConfig(n_bootstrap=5)
