"""How much the data drifted: the severity score and level of a drift report.

A weighted sum, clipped to [0, 1], of components each in [0, 1]: ``feature_share`` (share of
features drifted globally), ``magnitude`` (largest effect/threshold ratio among drifted tests
divided by ``severity_magnitude_cap``), ``traffic`` (affected traffic share), ``unseen`` (global
unseen share divided by ``severity_unseen_cap``), ``multivariate``, ``prediction`` and
``uncertainty`` (1 when that test drifted). The level is ``none`` below ``severity_low``, then
``low``, ``medium`` from ``severity_medium``, ``high`` from ``severity_high``. With the default
weights, MMD alone stays below ``severity_medium``, so a permutation test's false positive cannot
raise a medium alarm; MMD does not affect the scope.
"""

from __future__ import annotations

import numpy as np

from ct_assets.core.monitoring.drift.scope import Scope
from ct_assets.core.monitoring.drift.types import (
    SEVERITY_LEVELS,
    DriftConfig,
    FeatureTestResult,
    ModelOutputDrift,
    MultivariateDrift,
    SegmentDrift,
)


def score_severity(
    feature_results: list[FeatureTestResult],
    segments: list[SegmentDrift],
    scope: Scope,
    unseen_share: dict[str, float],
    multivariate: MultivariateDrift | None,
    prediction_drift: ModelOutputDrift | None,
    config: DriftConfig,
) -> tuple[float, str, dict[str, float]]:
    """Severity score, level and the components it was computed from (rule in the module docstring)."""
    drifted_ratios = [r.effect_ratio for r in feature_results if r.drifted]
    drifted_ratios += [r.effect_ratio for s in segments for r in s.results if r.drifted]
    components = {
        "feature_share": sum(r.drifted for r in feature_results) / max(len(feature_results), 1),
        "magnitude": min(1.0, max(drifted_ratios, default=0.0) / config.severity_magnitude_cap),
        "traffic": scope.affected_traffic_share,
        "unseen": min(1.0, max(unseen_share.values(), default=0.0) / config.severity_unseen_cap),
        "multivariate": float(multivariate is not None and multivariate.drifted),
        "prediction": float(prediction_drift is not None and prediction_drift.prediction.drifted),
        "uncertainty": float(prediction_drift is not None and prediction_drift.uncertainty.drifted),
    }
    weights = {
        "feature_share": config.severity_weight_feature_share,
        "magnitude": config.severity_weight_magnitude,
        "traffic": config.severity_weight_traffic,
        "unseen": config.severity_weight_unseen,
        "multivariate": config.severity_weight_multivariate,
        "prediction": config.severity_weight_prediction,
        "uncertainty": config.severity_weight_uncertainty,
    }
    score = float(np.clip(sum(weights[name] * value for name, value in components.items()), 0.0, 1.0))
    cut_offs = (config.severity_low, config.severity_medium, config.severity_high)
    level = SEVERITY_LEVELS[sum(score >= cut_off for cut_off in cut_offs)]
    return score, level, components
