"""Feature-wise drift tests: KS + PSI for numeric features, chi-squared + Cramer's V for categorical ones.

Every test runs globally and in every segment; the p-values of one family are corrected
(Bonferroni or Benjamini-Hochberg FDR) and a test counts as *drifted* only when its corrected
p-value is below ``alpha`` **and** its effect size reaches the threshold: with 100k rows every
p-value is tiny, so significance alone means nothing. The model-output tests (KS + PSI on the
production model's scores and on their entropy, the semantics of alibi-detect's
``ClassifierUncertaintyDrift`` with ``uncertainty_type='entropy'``) form a family of their own.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from ct_assets.core.monitoring.drift.stats import (
    Grouping,
    adjust_p_values,
    binary_entropy,
    categorical_drift_by_groups,
    ks_p_values,
    numeric_drift_by_groups,
)
from ct_assets.core.monitoring.drift.types import (
    GLOBAL_SEGMENT,
    PREDICTION_FEATURE,
    UNCERTAINTY_FEATURE,
    DriftConfig,
    FeatureTestResult,
    ModelOutputDrift,
)

if TYPE_CHECKING:
    import pandas as pd

MISSING_CATEGORY = "<missing>"


def factorize_pair(reference: pd.Series, current: pd.Series) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Shared integer codes for reference and current values of one categorical column."""
    import pandas as pd
    codes, uniques = pd.factorize(pd.concat([reference, current], ignore_index=True))
    codes = codes.astype(np.int64)
    labels = [str(value) for value in uniques]
    if (codes < 0).any():  # missing values form their own category
        codes[codes < 0] = len(labels)
        labels.append(MISSING_CATEGORY)
    return codes[: len(reference)], codes[len(reference):], labels


@dataclass(frozen=True)
class CategoricalCodes:
    """One categorical column as integer codes shared by both sides; ``labels[code]`` is the value."""

    reference: np.ndarray
    current: np.ndarray
    labels: list[str]


@dataclass(frozen=True)
class RawTest:
    """One test before the family's p-value correction (fields as in ``FeatureTestResult``)."""

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


def run_feature_tests(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    config: DriftConfig,
    categorical_codes: dict[str, CategoricalCodes],
    segment_codes: dict[str, CategoricalCodes],
) -> list[RawTest]:
    """Every feature test, globally and in every segment (eligible or not; filtering comes later)."""
    n_reference, n_current = len(reference), len(current)
    global_grouping = Grouping(np.zeros(n_reference, np.int64), np.zeros(n_current, np.int64), 1)
    dimensions = [(GLOBAL_SEGMENT, [GLOBAL_SEGMENT], global_grouping)] + [
        (column, codes.labels, Grouping(codes.reference, codes.current, len(codes.labels)))
        for column, codes in segment_codes.items()
    ]
    tests: list[RawTest] = []

    for feature in config.tested_numeric:
        stats = numeric_drift_by_groups(
            reference[feature].to_numpy(), current[feature].to_numpy(), [d[2] for d in dimensions], config.psi_bins
        )
        for (column, labels, _), group_stats in zip(dimensions, stats):
            p_values = ks_p_values(group_stats.ks_statistic, group_stats.n_reference, group_stats.n_current)
            for index, label in enumerate(labels):
                tests.append(
                    RawTest(feature, "numeric", "ks", float(group_stats.ks_statistic[index]), float(p_values[index]),
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
                    RawTest(feature, "categorical", "chi2", float(group_stats.chi2_statistic[index]),
                             float(group_stats.chi2_p_value[index]), float(group_stats.cramers_v[index]),
                             "cramers_v", config.cramers_v_threshold, int(group_stats.n_reference[index]),
                             int(group_stats.n_current[index]), column, label)
                )
    return tests


def finalise(tests: list[RawTest], config: DriftConfig) -> list[FeatureTestResult]:
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


def unseen_flags(codes: CategoricalCodes) -> np.ndarray:
    """Per current row: does its value never occur in the reference?"""
    seen = np.zeros(len(codes.labels), dtype=bool)
    seen[codes.reference] = True
    return ~seen[codes.current]


def model_output_drift(
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
            RawTest(feature, "model", "ks", float(stats.ks_statistic[0]), float(p_value), float(stats.psi[0]), "psi",
                     config.prediction_psi_threshold, int(stats.n_reference[0]), int(stats.n_current[0]),
                     GLOBAL_SEGMENT, GLOBAL_SEGMENT)
        )
    prediction, uncertainty = finalise(raw, config)
    return ModelOutputDrift(prediction=prediction, uncertainty=uncertainty)
