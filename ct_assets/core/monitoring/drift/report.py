"""Data-drift report: what changed, where, and how much.

``build_drift_report(reference, current, config)`` compares a current batch of the ``features``
table with a reference window and returns a ``DriftReport``:

* **Feature-wise tests**: KS for numeric features, chi-squared for categorical ones, each with an
  effect size (PSI for numeric, bias-corrected Cramer's V for categorical). The p-values of a family
  of tests are corrected (Bonferroni or Benjamini-Hochberg FDR). A test counts as *drifted* only
  when its corrected p-value is below ``alpha`` **and** its effect size reaches the threshold:
  with 100k rows every p-value is tiny, so significance alone means nothing.
  Families: the global tests; all segment tests together; the model-output tests.
* **Localisation**: the same tests within every segment (each value of each segment column) with
  enough rows on both sides; smaller segments are skipped and recorded.
* **Unseen categories**: share of current rows whose value never occurs in the reference.
* **Multivariate**: alibi-detect ``MMDDrift`` (PyTorch backend) on a bounded, seeded subsample.
* **Model outputs**: KS + PSI on the production model's scores and on their entropy (the
  semantics of alibi-detect's ``ClassifierUncertaintyDrift`` with ``uncertainty_type='entropy'``).

Scope rule (``none | local | global``), applied per drifted feature, then combined:

1. A feature has *drifted* when one of its tests drifted (whole batch or any segment) or its
   unseen share reached ``unseen_share_threshold`` (whole batch or any segment). A segment is
   *hit* by the feature when the feature's test drifted there or its unseen share did.
2. The feature is ``local`` when some segment column has hit segments that are a non-empty
   minority of its tested segments (at most ``local_max_segment_share``, and at least two tested
   segments): e.g. discount hits region=south only, or query_term hits category=fashion only.
   Other columns may show the shift too, diluted (every region sells fashion). When several
   columns qualify, the one with the sharpest contrast is named: the weakest hit segment's signal
   minus the strongest non-hit segment's signal (signal = effect size or unseen share in units
   of its threshold). A diluted shift that just crosses the threshold in one category loses to
   the group where it really happens. Ties go to the column with less affected traffic.
3. Otherwise the feature is ``global``: it drifted in most segments of every column, or it drifted
   in the whole batch without any segment to pin it on (then all traffic counts as affected).
4. The report is ``none`` without drifted features, ``global`` when any drifted feature is global,
   else ``local``, naming the union of the features' segments (a regional promotion and new slang
   at once stay local, to region=south and category=fashion). ``affected_traffic_share`` is the
   share of current rows in at least one named segment.

Severity rule: a weighted sum, clipped to [0, 1], of components each in [0, 1]:
``feature_share`` (share of features drifted globally), ``magnitude`` (largest effect/threshold
ratio among drifted tests divided by ``severity_magnitude_cap``), ``traffic`` (affected traffic
share), ``unseen`` (global unseen share divided by ``severity_unseen_cap``), ``multivariate``,
``prediction`` and ``uncertainty`` (1 when that test drifted). The level is ``none`` below
``severity_low``, then ``low``, ``medium`` from ``severity_medium``, ``high`` from
``severity_high``. With the default weights, MMD alone stays below ``severity_medium``, so a
permutation test's false positive cannot raise a medium alarm; MMD does not affect the scope.

Heavy imports (scipy, torch, alibi-detect) happen inside functions.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Iterator

import numpy as np
import pandas as pd

from ct_assets.core.data import schema
from ct_assets.core.monitoring.drift.stats import (
    Grouping,
    adjust_p_values,
    binary_entropy,
    categorical_drift_by_groups,
    ks_p_values,
    numeric_drift_by_groups,
)

GLOBAL_SEGMENT = "all"  # segment_column and segment_value of whole-batch tests
PREDICTION_FEATURE = "model_score"
UNCERTAINTY_FEATURE = "model_uncertainty"
MISSING_CATEGORY = "<missing>"
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


# --------------------------------------------------------------------------------------------
# Input handling


def _validate_frames(reference: pd.DataFrame, current: pd.DataFrame, config: DriftConfig) -> None:
    required = (*config.numeric_features, *config.categorical_features, *config.segment_columns)
    for name, frame in (("reference", reference), ("current", current)):
        if not isinstance(frame, pd.DataFrame):
            raise ValueError(f"{name} must be a pandas DataFrame, got {type(frame).__name__}")
        if frame.empty:
            raise ValueError(f"{name} frame is empty")
        missing = [column for column in dict.fromkeys(required) if column not in frame.columns]
        if missing:
            raise ValueError(f"{name} frame lacks columns {missing}")
        non_numeric = [c for c in config.tested_numeric if not pd.api.types.is_numeric_dtype(frame[c])]
        if non_numeric:
            raise ValueError(f"{name} frame has non-numeric values in numeric features {non_numeric}")


def _validate_scores(scores: np.ndarray | pd.Series | None, n_rows: int, name: str) -> np.ndarray | None:
    if scores is None:
        return None
    values = np.asarray(scores, dtype=np.float64).reshape(-1)
    if values.shape[0] != n_rows:
        raise ValueError(f"{name} has {values.shape[0]} scores for {n_rows} rows")
    if not np.all(np.isfinite(values)) or values.min() < 0.0 or values.max() > 1.0:
        raise ValueError(f"{name} must be finite probabilities in [0, 1]")
    return values


def _factorize_pair(reference: pd.Series, current: pd.Series) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Shared integer codes for reference and current values of one categorical column."""
    codes, uniques = pd.factorize(pd.concat([reference, current], ignore_index=True))
    codes = codes.astype(np.int64)
    labels = [str(value) for value in uniques]
    if (codes < 0).any():  # missing values form their own category
        codes[codes < 0] = len(labels)
        labels.append(MISSING_CATEGORY)
    return codes[: len(reference)], codes[len(reference):], labels


@dataclass(frozen=True)
class _CategoricalCodes:
    reference: np.ndarray
    current: np.ndarray
    labels: list[str]


# --------------------------------------------------------------------------------------------
# Feature-wise tests


@dataclass(frozen=True)
class _RawTest:
    feature: str
    kind: str
    test: str
    statistic: float
    p_value: float
    effect_size: float
    effect_size_name: str
    effect_threshold: float
    n_reference: int
    n_current: int
    segment_column: str
    segment_value: str


def _run_feature_tests(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    config: DriftConfig,
    categorical_codes: dict[str, _CategoricalCodes],
    segment_codes: dict[str, _CategoricalCodes],
) -> list[_RawTest]:
    """Every feature test, globally and in every segment (eligible or not; filtering comes later)."""
    n_reference, n_current = len(reference), len(current)
    global_grouping = Grouping(np.zeros(n_reference, np.int64), np.zeros(n_current, np.int64), 1)
    dimensions = [(GLOBAL_SEGMENT, [GLOBAL_SEGMENT], global_grouping)] + [
        (column, codes.labels, Grouping(codes.reference, codes.current, len(codes.labels)))
        for column, codes in segment_codes.items()
    ]
    tests: list[_RawTest] = []

    for feature in config.tested_numeric:
        stats = numeric_drift_by_groups(
            reference[feature].to_numpy(), current[feature].to_numpy(), [d[2] for d in dimensions], config.psi_bins
        )
        for (column, labels, _), group_stats in zip(dimensions, stats):
            p_values = ks_p_values(group_stats.ks_statistic, group_stats.n_reference, group_stats.n_current)
            for index, label in enumerate(labels):
                tests.append(
                    _RawTest(feature, "numeric", "ks", float(group_stats.ks_statistic[index]), float(p_values[index]),
                             float(group_stats.psi[index]), "psi", config.psi_threshold,
                             int(group_stats.n_reference[index]), int(group_stats.n_current[index]), column, label)
                )

    for feature in config.tested_categorical:
        codes = categorical_codes[feature]
        # A segment column is constant within its own segments: test it there only globally.
        usable = [d for d in dimensions if d[0] != feature]
        stats = categorical_drift_by_groups(codes.reference, codes.current, len(codes.labels), [d[2] for d in usable])
        for (column, labels, _), group_stats in zip(usable, stats):
            for index, label in enumerate(labels):
                tests.append(
                    _RawTest(feature, "categorical", "chi2", float(group_stats.chi2_statistic[index]),
                             float(group_stats.chi2_p_value[index]), float(group_stats.cramers_v[index]),
                             "cramers_v", config.cramers_v_threshold, int(group_stats.n_reference[index]),
                             int(group_stats.n_current[index]), column, label)
                )
    return tests


def _finalise(tests: list[_RawTest], config: DriftConfig) -> list[FeatureTestResult]:
    """Correct one family of tests and apply the significance-and-effect rule."""
    adjusted = adjust_p_values(np.array([t.p_value for t in tests], dtype=np.float64), config.correction)
    results = []
    for test, p_corrected in zip(tests, adjusted):
        drifted = bool(
            np.isfinite(p_corrected) and p_corrected < config.alpha
            and np.isfinite(test.effect_size) and test.effect_size >= test.effect_threshold
        )
        results.append(
            FeatureTestResult(
                feature=test.feature, kind=test.kind, test=test.test, statistic=test.statistic,
                p_value=test.p_value, p_value_corrected=float(p_corrected), effect_size=test.effect_size,
                effect_size_name=test.effect_size_name, effect_threshold=test.effect_threshold, drifted=drifted,
                n_reference=test.n_reference, n_current=test.n_current,
                segment_column=test.segment_column, segment_value=test.segment_value,
            )
        )
    return results


def _unseen_flags(codes: _CategoricalCodes) -> np.ndarray:
    """Per current row: does its value never occur in the reference?"""
    seen = np.zeros(len(codes.labels), dtype=bool)
    seen[codes.reference] = True
    return ~seen[codes.current]


# --------------------------------------------------------------------------------------------
# Multivariate and model-output tests


def _mmd_matrix(
    frame: pd.DataFrame,
    rows: np.ndarray,
    numeric: tuple[str, ...],
    means: np.ndarray,
    stds: np.ndarray,
    one_hot: list[tuple[str, list[str]]],
) -> np.ndarray:
    """Standardised numeric features + one-hot top categories of the sampled rows, float32."""
    sample = frame.iloc[rows]
    numeric_part = (sample[list(numeric)].to_numpy(dtype=np.float64) - means) / stds
    numeric_part = np.nan_to_num(numeric_part, nan=0.0)  # a missing value sits at the reference mean
    blocks = [numeric_part]
    for column, categories in one_hot:
        values = sample[column].astype(object).to_numpy()
        blocks.append((values[:, None] == np.array(categories, dtype=object)[None, :]).astype(np.float64))
    return np.hstack(blocks).astype(np.float32)


def _multivariate_mmd(reference: pd.DataFrame, current: pd.DataFrame, config: DriftConfig) -> MultivariateDrift:
    """alibi-detect MMDDrift (PyTorch) on at most ``mmd_sample_size`` seeded rows per side.

    ``seconds`` excludes the one-off import of torch and alibi-detect (paid once per process).
    """
    import torch
    from alibi_detect.cd import MMDDrift

    started = time.perf_counter()

    rng = np.random.default_rng(config.seed)
    reference_rows = np.sort(rng.choice(len(reference), min(config.mmd_sample_size, len(reference)), replace=False))
    current_rows = np.sort(rng.choice(len(current), min(config.mmd_sample_size, len(current)), replace=False))
    numeric = config.tested_numeric
    reference_numeric = reference[list(numeric)].to_numpy(dtype=np.float64)
    means = np.nan_to_num(np.nanmean(reference_numeric, axis=0))
    stds = np.nan_to_num(np.nanstd(reference_numeric, axis=0))
    stds[stds == 0] = 1.0
    one_hot = [
        (column, [str(v) for v in reference[column].value_counts().index[: config.mmd_top_categories]])
        for column in config.tested_categorical
    ]
    x_reference = _mmd_matrix(reference, reference_rows, numeric, means, stds, one_hot)
    x_current = _mmd_matrix(current, current_rows, numeric, means, stds, one_hot)
    # The permutation test draws from torch's global generator: seed a forked copy for determinism.
    # Few threads: on a shared 2-core box, intra-op parallelism over a 1000 x 1000 kernel matrix
    # has a heavy latency tail (0.3 s typical, 2 s under contention) while one thread is steady.
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(config.mmd_threads)
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(config.seed)
            detector = MMDDrift(
                x_reference, backend="pytorch", p_val=config.mmd_alpha,
                n_permutations=config.mmd_permutations, device="cpu",
            )
            outcome = detector.predict(x_current, return_p_val=True, return_distance=True)["data"]
    finally:
        torch.set_num_threads(previous_threads)
    return MultivariateDrift(
        method="mmd",
        statistic=float(outcome["distance"]),
        p_value=float(outcome["p_val"]),
        distance_threshold=float(outcome["distance_threshold"]),
        drifted=bool(outcome["is_drift"]),
        n_reference_sample=int(x_reference.shape[0]),
        n_current_sample=int(x_current.shape[0]),
        n_permutations=config.mmd_permutations,
        n_dimensions=int(x_reference.shape[1]),
        seconds=time.perf_counter() - started,
    )


def _model_output_drift(
    reference_scores: np.ndarray, current_scores: np.ndarray, config: DriftConfig
) -> ModelOutputDrift:
    """KS + PSI of scores and of their entropy, corrected as one family of two tests."""
    single = [Grouping(np.zeros(len(reference_scores), np.int64), np.zeros(len(current_scores), np.int64), 1)]
    raw = []
    for feature, reference_values, current_values in (
        (PREDICTION_FEATURE, reference_scores, current_scores),
        (UNCERTAINTY_FEATURE, binary_entropy(reference_scores), binary_entropy(current_scores)),
    ):
        stats = numeric_drift_by_groups(reference_values, current_values, single, config.psi_bins)[0]
        p_value = ks_p_values(stats.ks_statistic, stats.n_reference, stats.n_current)[0]
        raw.append(
            _RawTest(feature, "model", "ks", float(stats.ks_statistic[0]), float(p_value), float(stats.psi[0]), "psi",
                     config.prediction_psi_threshold, int(stats.n_reference[0]), int(stats.n_current[0]),
                     GLOBAL_SEGMENT, GLOBAL_SEGMENT)
        )
    prediction, uncertainty = _finalise(raw, config)
    return ModelOutputDrift(prediction=prediction, uncertainty=uncertainty)


# --------------------------------------------------------------------------------------------
# Scope and severity


@dataclass(frozen=True)
class _Scope:
    scope: str
    dimension: str | None
    affected_segments: tuple[str, ...]
    affected_traffic_share: float


def _segment_hit(segment: SegmentDrift, feature: str, config: DriftConfig) -> bool:
    """Does ``feature`` show drift (a drifted test or unseen categories) in ``segment``?"""
    tested_drift = any(r.feature == feature and r.drifted for r in segment.results)
    return tested_drift or segment.unseen_share.get(feature, 0.0) >= config.unseen_share_threshold


def _segment_signal(segment: SegmentDrift, feature: str, config: DriftConfig) -> float:
    """Strength of ``feature``'s shift in ``segment`` in threshold units (effect or unseen share)."""
    effect = max((r.effect_ratio for r in segment.results if r.feature == feature), default=0.0)
    return max(effect, segment.unseen_share.get(feature, 0.0) / config.unseen_share_threshold)


def _traffic_share(names: list[str], segment_codes: dict[str, _CategoricalCodes], n_current: int) -> float:
    """Share of current rows that fall in at least one of the named segments."""
    in_any = np.zeros(n_current, dtype=bool)
    for name in names:
        column, value = name.split("=", 1)
        codes = segment_codes[column]
        in_any |= codes.current == codes.labels.index(value)
    return float(in_any.mean())


def _localise_feature(
    feature: str,
    segments: list[SegmentDrift],
    segment_codes: dict[str, _CategoricalCodes],
    n_current: int,
    config: DriftConfig,
) -> FeatureLocalisation:
    """Apply the scope rule (module docstring) to one drifted feature."""
    candidates = []
    for column in config.segment_columns:
        if column == feature:  # constant within its own segments
            continue
        tested = [s for s in segments if s.column == column and not s.skipped]
        hit = [s for s in tested if _segment_hit(s, feature, config)]
        if len(tested) >= 2 and 0 < len(hit) <= config.local_max_segment_share * len(tested):
            weakest_hit = min(_segment_signal(s, feature, config) for s in hit)
            strongest_miss = max((_segment_signal(s, feature, config) for s in tested if s not in hit), default=0.0)
            candidates.append((weakest_hit - strongest_miss, -sum(s.traffic_share for s in hit), column, hit))
    if candidates:
        _, negative_traffic, column, hit = max(candidates, key=lambda c: (c[0], c[1]))
        return FeatureLocalisation(feature, "local", column, tuple(s.name for s in hit), float(-negative_traffic))
    hit = [s.name for s in segments if not s.skipped and _segment_hit(s, feature, config)]
    # Drift seen only in whole-batch tests is spread too thin to pin on any segment: all traffic.
    traffic = _traffic_share(hit, segment_codes, n_current) if hit else 1.0
    return FeatureLocalisation(feature, "global", None, tuple(hit), traffic)


def _decide_scope(
    localisations: list[FeatureLocalisation],
    segment_codes: dict[str, _CategoricalCodes],
    n_current: int,
    config: DriftConfig,
) -> _Scope:
    """Combine per-feature localisations: global if any feature is global, local if all are."""
    if not localisations:
        return _Scope("none", None, (), 0.0)
    scope = "global" if any(loc.scope == "global" for loc in localisations) else "local"
    segments = list(dict.fromkeys(name for loc in localisations for name in loc.segments))
    if scope == "global":
        traffic = _traffic_share(segments, segment_codes, n_current) if segments else 1.0
        return _Scope("global", None, tuple(segments), max(traffic, max(loc.traffic_share for loc in localisations)))
    dimensions = [c for c in config.segment_columns if any(loc.dimension == c for loc in localisations)]
    return _Scope("local", ",".join(dimensions), tuple(segments), _traffic_share(segments, segment_codes, n_current))


def _severity(
    feature_results: list[FeatureTestResult],
    segments: list[SegmentDrift],
    scope: _Scope,
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


# --------------------------------------------------------------------------------------------
# Entry point


def build_drift_report(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    config: DriftConfig | None = None,
    reference_scores: np.ndarray | pd.Series | None = None,
    current_scores: np.ndarray | pd.Series | None = None,
) -> DriftReport:
    """Compare ``current`` rows of the features table with ``reference`` rows.

    Scores (the production model's P(is_fraud), aligned with the rows) enable the prediction and
    uncertainty drift tests; pass both or neither.

    >>> report = build_drift_report(reference_features, today_features, DriftConfig())  # doctest: +SKIP
    >>> report.scope, report.severity_level, report.affected_segments  # doctest: +SKIP
    ('local', 'medium', ('region=south',))
    """
    started = time.perf_counter()
    config = config or DriftConfig()
    _validate_frames(reference, current, config)
    if (reference_scores is None) != (current_scores is None):
        raise ValueError("pass both reference_scores and current_scores, or neither")
    reference_score_values = _validate_scores(reference_scores, len(reference), "reference_scores")
    current_score_values = _validate_scores(current_scores, len(current), "current_scores")
    n_current = len(current)

    categorical_codes = {
        column: _CategoricalCodes(*_factorize_pair(reference[column], current[column]))
        for column in dict.fromkeys((*config.tested_categorical, *config.segment_columns))
    }
    segment_codes = {column: categorical_codes[column] for column in config.segment_columns}

    raw_tests = _run_feature_tests(reference, current, config, categorical_codes, segment_codes)
    global_raw = [t for t in raw_tests if t.segment_column == GLOBAL_SEGMENT]
    feature_results = _finalise(global_raw, config)

    # Segment eligibility by row counts; only eligible segments enter the correction family.
    eligible: dict[tuple[str, str], tuple[int, int]] = {}
    skipped: list[tuple[str, str, int, int]] = []
    for column, codes in segment_codes.items():
        reference_rows = np.bincount(codes.reference, minlength=len(codes.labels))
        current_rows = np.bincount(codes.current, minlength=len(codes.labels))
        for index, label in enumerate(codes.labels):
            counts = (int(reference_rows[index]), int(current_rows[index]))
            if min(counts) >= config.min_segment_rows:
                eligible[(column, label)] = counts
            elif counts[1] > 0:  # segments absent today are not worth a record
                skipped.append((column, label, *counts))
    segment_raw = [t for t in raw_tests if (t.segment_column, t.segment_value) in eligible]
    segment_results = _finalise(segment_raw, config)

    unseen_rows = {feature: _unseen_flags(categorical_codes[feature]) for feature in config.tested_categorical}
    unseen_share = {feature: float(flags.mean()) for feature, flags in unseen_rows.items()}

    segments: list[SegmentDrift] = []
    for column, codes in segment_codes.items():
        current_rows = np.bincount(codes.current, minlength=len(codes.labels))
        for index, label in enumerate(codes.labels):
            key = (column, label)
            if key in eligible:
                in_segment = codes.current == index
                results = tuple(r for r in segment_results if (r.segment_column, r.segment_value) == key)
                segment_unseen = {
                    feature: float(flags[in_segment].mean())
                    for feature, flags in unseen_rows.items() if feature != column
                }
                drifted_features = tuple(r.feature for r in results if r.drifted)
                unseen_hit = any(share >= config.unseen_share_threshold for share in segment_unseen.values())
                segments.append(
                    SegmentDrift(column, label, *eligible[key], float(current_rows[index] / n_current), False, None,
                                 results, segment_unseen, drifted_features, bool(drifted_features) or unseen_hit)
                )
    for column, label, n_ref, n_cur in skipped:
        segments.append(
            SegmentDrift(column, label, n_ref, n_cur, n_cur / n_current, True,
                         f"fewer than {config.min_segment_rows} rows (reference {n_ref}, current {n_cur})",
                         (), {}, (), False)
        )

    multivariate = _multivariate_mmd(reference, current, config) if config.multivariate else None
    prediction_drift = (
        _model_output_drift(reference_score_values, current_score_values, config)
        if reference_score_values is not None and current_score_values is not None else None
    )

    # A feature has drifted when a test of it drifted (whole batch or a segment) or its unseen
    # share reached the threshold; ordered by its largest effect ratio.
    evidence: dict[str, float] = {}
    for result in [*feature_results, *segment_results]:
        if result.drifted:
            evidence[result.feature] = max(evidence.get(result.feature, 0.0), result.effect_ratio)
    for feature in config.tested_categorical:
        unseen_globally = unseen_share[feature] >= config.unseen_share_threshold
        if unseen_globally or any(_segment_hit(s, feature, config) for s in segments):
            evidence.setdefault(feature, 0.0)
    drifted_features = tuple(sorted(evidence, key=lambda f: -evidence[f]))
    localisations = [_localise_feature(f, segments, segment_codes, n_current, config) for f in drifted_features]
    scope = _decide_scope(localisations, segment_codes, n_current, config)
    severity, level, components = _severity(
        feature_results, segments, scope, unseen_share, multivariate, prediction_drift, config
    )

    flags = []
    if any(share >= config.unseen_share_threshold for share in unseen_share.values()):
        flags.append("unseen_categories")
    if multivariate is not None and multivariate.drifted:
        flags.append("multivariate_drift")
    if prediction_drift is not None and prediction_drift.prediction.drifted:
        flags.append("prediction_drift")
    if prediction_drift is not None and prediction_drift.uncertainty.drifted:
        flags.append("uncertainty_drift")
    if skipped:
        flags.append("segments_skipped")

    return DriftReport(
        scope=scope.scope,
        scope_dimension=scope.dimension,
        severity=severity,
        severity_level=level,
        severity_components=components,
        drifted_features=drifted_features,
        top_features=drifted_features[: config.top_k_features],
        affected_segments=scope.affected_segments,
        affected_traffic_share=scope.affected_traffic_share,
        feature_localisation=tuple(localisations),
        unseen_share=unseen_share,
        feature_results=tuple(feature_results),
        segments=tuple(segments),
        multivariate=multivariate,
        prediction_drift=prediction_drift,
        flags=tuple(flags),
        n_reference=len(reference),
        n_current=n_current,
        cost_seconds=time.perf_counter() - started,
        skipped_segments=tuple(f"{column}={label}" for column, label, _, _ in skipped),
        config=config,
    )
