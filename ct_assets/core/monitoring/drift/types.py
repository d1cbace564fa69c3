"""What a drift report says: its settings (``DriftConfig``) and result types, down to one test.

``build_drift_report`` (in :mod:`ct_assets.core.monitoring.drift.report`) fills these; the store,
the plot, the policy's evidence and the backtest read them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterator

import numpy as np

from ct_assets.core.data import schema

GLOBAL_SEGMENT = "all"  # segment_column and segment_value of whole-batch tests
PREDICTION_FEATURE = "model_score"
UNCERTAINTY_FEATURE = "model_uncertainty"
SEVERITY_LEVELS: tuple[str, ...] = ("none", "low", "medium", "high")  # in increasing order


@dataclass(frozen=True)
class DriftConfig:
    """Every knob of a drift report. Defaults suit daily batches of 2k-100k orders.

    ``excluded_features`` defaults to ``is_weekend``: a daily partition is all-weekday or
    all-weekend by construction, so that feature "drifts" every Saturday.
    ``correction`` defaults to Bonferroni: Benjamini-Hochberg FDR adapts to the number of true
    discoveries, so a strong real shift (south's discount) lets marginal noise elsewhere through
    (seen on simulated data: query_term in region=north on a regional-promotion day).
    ``cramers_v_threshold`` applies to the bias-corrected Cramer's V of categorical features.
    """

    numeric_features: tuple[str, ...] = schema.FEATURE_NUMERIC
    categorical_features: tuple[str, ...] = schema.FEATURE_CATEGORICAL
    segment_columns: tuple[str, ...] = schema.SEGMENT_COLUMNS
    excluded_features: tuple[str, ...] = ("is_weekend",)
    alpha: float = 0.05
    correction: str = "bonferroni"
    psi_threshold: float = 0.1
    psi_bins: int = 10
    cramers_v_threshold: float = 0.1
    prediction_psi_threshold: float = 0.1
    min_segment_rows: int = 200
    unseen_share_threshold: float = 0.02
    multivariate: bool = True
    mmd_sample_size: int = 500
    mmd_permutations: int = 100
    mmd_alpha: float = 0.01
    mmd_top_categories: int = 8
    mmd_threads: int = 1
    local_max_segment_share: float = 0.5
    severity_weight_feature_share: float = 0.2
    severity_weight_magnitude: float = 0.2
    severity_weight_traffic: float = 0.25
    severity_weight_unseen: float = 0.1
    severity_weight_multivariate: float = 0.1
    severity_weight_prediction: float = 0.1
    severity_weight_uncertainty: float = 0.05
    severity_magnitude_cap: float = 5.0
    severity_unseen_cap: float = 0.1
    severity_low: float = 0.1
    severity_medium: float = 0.3
    severity_high: float = 0.55
    top_k_features: int = 5
    seed: int = 0

    def __post_init__(self) -> None:
        if self.correction not in ("bonferroni", "fdr"):
            raise ValueError(f"correction must be 'bonferroni' or 'fdr', got {self.correction!r}")
        for name in ("alpha", "mmd_alpha", "local_max_segment_share"):
            value = getattr(self, name)
            if not 0.0 < value < 1.0:
                raise ValueError(f"{name} must be in (0, 1), got {value}")
        for name in ("psi_threshold", "cramers_v_threshold", "prediction_psi_threshold", "unseen_share_threshold",
                     "severity_magnitude_cap", "severity_unseen_cap"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        for name in ("psi_bins", "mmd_sample_size", "mmd_permutations", "mmd_top_categories", "top_k_features"):
            if getattr(self, name) < 2:
                raise ValueError(f"{name} must be at least 2, got {getattr(self, name)}")
        if self.mmd_threads < 1:
            raise ValueError(f"mmd_threads must be at least 1, got {self.mmd_threads}")
        if self.min_segment_rows < 1:
            raise ValueError(f"min_segment_rows must be at least 1, got {self.min_segment_rows}")
        weights = [getattr(self, name) for name in self.__dataclass_fields__ if name.startswith("severity_weight_")]
        if min(weights) < 0:
            raise ValueError("severity weights must be non-negative")
        if not 0.0 < self.severity_low < self.severity_medium < self.severity_high <= 1.0:
            raise ValueError("need 0 < severity_low < severity_medium < severity_high <= 1")
        overlap = set(self.numeric_features) & set(self.categorical_features)
        if overlap:
            raise ValueError(f"features listed as both numeric and categorical: {sorted(overlap)}")

    @property
    def tested_numeric(self) -> tuple[str, ...]:
        return tuple(f for f in self.numeric_features if f not in self.excluded_features)

    @property
    def tested_categorical(self) -> tuple[str, ...]:
        return tuple(f for f in self.categorical_features if f not in self.excluded_features)


@dataclass(frozen=True)
class FeatureTestResult:
    """One two-sample test of one feature in one segment (``segment_column == 'all'``: whole batch)."""

    feature: str
    kind: str  # "numeric" | "categorical" | "model"
    test: str  # "ks" | "chi2"
    statistic: float
    p_value: float
    p_value_corrected: float
    effect_size: float
    effect_size_name: str  # "psi" | "cramers_v"
    effect_threshold: float
    drifted: bool
    n_reference: int
    n_current: int
    segment_column: str = GLOBAL_SEGMENT
    segment_value: str = GLOBAL_SEGMENT

    @property
    def effect_ratio(self) -> float:
        """Effect size in units of its threshold (1.0 = just at the threshold); 0 when not computable."""
        return float(self.effect_size / self.effect_threshold) if np.isfinite(self.effect_size) else 0.0

    @property
    def segment(self) -> str:
        if self.segment_column == GLOBAL_SEGMENT:
            return GLOBAL_SEGMENT
        return f"{self.segment_column}={self.segment_value}"


@dataclass(frozen=True)
class SegmentDrift:
    """Drift evidence within one segment, e.g. region=south. Skipped segments have no results."""

    column: str
    value: str
    n_reference: int
    n_current: int
    traffic_share: float  # share of current rows in this segment
    skipped: bool
    skip_reason: str | None
    results: tuple[FeatureTestResult, ...]
    unseen_share: dict[str, float]
    drifted_features: tuple[str, ...]
    drifted: bool

    @property
    def name(self) -> str:
        return f"{self.column}={self.value}"


@dataclass(frozen=True)
class FeatureLocalisation:
    """Where one drifted feature changed: ``local`` to a few segments of one column, or ``global``."""

    feature: str
    scope: str  # "local" | "global"
    dimension: str | None  # the segment column a local shift is confined to
    segments: tuple[str, ...]  # e.g. ("region=south",); for global: every segment where it drifted
    traffic_share: float  # share of current rows in those segments (1.0: whole-batch drift only)


@dataclass(frozen=True)
class MultivariateDrift:
    """Outcome and cost of the bounded MMD permutation test."""

    method: str
    statistic: float  # MMD^2
    p_value: float
    distance_threshold: float
    drifted: bool
    n_reference_sample: int
    n_current_sample: int
    n_permutations: int
    n_dimensions: int
    seconds: float


@dataclass(frozen=True)
class ModelOutputDrift:
    """Drift of the production model's scores and of their uncertainty (entropy); no labels needed."""

    prediction: FeatureTestResult
    uncertainty: FeatureTestResult

    @property
    def drifted(self) -> bool:
        return self.prediction.drifted or self.uncertainty.drifted


@dataclass(frozen=True)
class DriftReport:
    """What changed (features), where (scope, segments) and how much (effects, severity)."""

    scope: str
    scope_dimension: str | None
    severity: float
    severity_level: str
    severity_components: dict[str, float]
    drifted_features: tuple[str, ...]
    top_features: tuple[str, ...]
    affected_segments: tuple[str, ...]
    affected_traffic_share: float
    feature_localisation: tuple[FeatureLocalisation, ...]
    unseen_share: dict[str, float]
    feature_results: tuple[FeatureTestResult, ...]
    segments: tuple[SegmentDrift, ...]
    multivariate: MultivariateDrift | None
    prediction_drift: ModelOutputDrift | None
    flags: tuple[str, ...]
    n_reference: int
    n_current: int
    cost_seconds: float
    skipped_segments: tuple[str, ...] = field(default=())
    config: DriftConfig = field(default_factory=DriftConfig)  # the thresholds this report used

    def all_results(self) -> Iterator[FeatureTestResult]:
        """Global, per-segment and model-output test results, in that order."""
        yield from self.feature_results
        for segment in self.segments:
            yield from segment.results
        if self.prediction_drift is not None:
            yield self.prediction_drift.prediction
            yield self.prediction_drift.uncertainty

    def ranked_features(self) -> tuple[str, ...]:
        """Input features ordered by their largest effect ratio (globally or in any segment)."""
        best: dict[str, float] = {}
        for result in self.all_results():
            if result.kind != "model":
                best[result.feature] = max(best.get(result.feature, 0.0), result.effect_ratio)
        return tuple(sorted(best, key=lambda feature: -best[feature]))

    def strongest_result(self, feature: str) -> FeatureTestResult:
        """The test of ``feature`` with the largest effect ratio, preferring drifted tests."""
        candidates = [r for r in self.all_results() if r.feature == feature]
        if not candidates:
            raise ValueError(f"feature {feature!r} was not tested in this report")
        return max(candidates, key=lambda r: (r.drifted, r.effect_ratio))

    def to_summary(self) -> dict[str, Any]:
        """Flat, JSON-able dict (str/int/float/bool/list[str] values) for asset metadata."""
        summary: dict[str, Any] = {
            "scope": self.scope,
            "scope_dimension": self.scope_dimension or "",
            "severity": round(self.severity, 4),
            "severity_level": self.severity_level,
            "drifted_features": list(self.drifted_features),
            "top_features": list(self.top_features),
            "affected_segments": list(self.affected_segments),
            "affected_traffic_share": round(self.affected_traffic_share, 4),
            "n_drifted_features": len(self.drifted_features),
            "n_tested_features": len(self.feature_results),
            "n_segments_tested": sum(not s.skipped for s in self.segments),
            "skipped_segments": list(self.skipped_segments),
            "max_unseen_share": round(max(self.unseen_share.values(), default=0.0), 4),
            "flags": list(self.flags),
            "n_reference": self.n_reference,
            "n_current": self.n_current,
            "cost_seconds": round(self.cost_seconds, 3),
        }
        for name, value in self.severity_components.items():
            summary[f"severity.{name}"] = round(value, 4)
        for localisation in self.feature_localisation:
            where = ",".join(localisation.segments) if localisation.scope == "local" else "all"
            summary[f"localisation.{localisation.feature}"] = f"{localisation.scope}:{where}"
        for feature, share in self.unseen_share.items():
            summary[f"unseen_share.{feature}"] = round(share, 4)
        for result in self.feature_results:
            summary[f"effect.{result.feature}"] = _finite(result.effect_size)
        if self.multivariate is not None:
            summary["multivariate_drift"] = self.multivariate.drifted
            summary["multivariate_p_value"] = _finite(self.multivariate.p_value)
            summary["multivariate_sample_size"] = self.multivariate.n_current_sample
            summary["multivariate_seconds"] = round(self.multivariate.seconds, 3)
        if self.prediction_drift is not None:
            summary["prediction_drift"] = self.prediction_drift.prediction.drifted
            summary["prediction_psi"] = _finite(self.prediction_drift.prediction.effect_size)
            summary["uncertainty_drift"] = self.prediction_drift.uncertainty.drifted
            summary["uncertainty_psi"] = _finite(self.prediction_drift.uncertainty.effect_size)
        return summary


def _finite(value: float) -> float:
    """Round for metadata; NaN/inf (untestable) become -1.0 so the summary stays valid JSON."""
    return round(float(value), 6) if np.isfinite(value) else -1.0
