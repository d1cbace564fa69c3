"""Data-drift report: what changed, where, and how much.

``build_drift_report(reference, current, config)`` compares a current batch of the ``features``
table with a reference window and returns a ``DriftReport``:

* **Feature-wise tests** (:mod:`~ct_assets.core.monitoring.drift.univariate`): KS for numeric
  features, chi-squared for categorical ones, each with an effect size (PSI for numeric,
  bias-corrected Cramer's V for categorical), corrected per family. Families: the global tests;
  all segment tests together; the model-output tests.
* **Localisation**: the same tests within every segment (each value of each segment column) with
  enough rows on both sides; smaller segments are skipped and recorded.
* **Unseen categories**: share of current rows whose value never occurs in the reference.
* **Multivariate** (:mod:`~ct_assets.core.monitoring.drift.mmd`): alibi-detect ``MMDDrift`` on a
  bounded, seeded subsample.
* **Model outputs**: KS + PSI on the production model's scores and on their entropy.

The scope rule is in :mod:`~ct_assets.core.monitoring.drift.scope`, the severity rule in
:mod:`~ct_assets.core.monitoring.drift.severity`. Heavy imports (scipy, torch, alibi-detect)
happen inside functions.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import numpy as np

from ct_assets.core.monitoring.drift.mmd import multivariate_mmd
from ct_assets.core.monitoring.drift.scope import decide_scope, localise_feature, segment_hit
from ct_assets.core.monitoring.drift.severity import score_severity
from ct_assets.core.monitoring.drift.types import GLOBAL_SEGMENT, DriftConfig, DriftReport, SegmentDrift
from ct_assets.core.monitoring.drift.univariate import (
    CategoricalCodes,
    factorize_pair,
    finalise,
    model_output_drift,
    run_feature_tests,
    unseen_flags,
)

if TYPE_CHECKING:
    import pandas as pd


def _validate_frames(reference: pd.DataFrame, current: pd.DataFrame, config: DriftConfig) -> None:
    import pandas as pd
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

    A shift of ``amount`` in one region only is local to that region:

    >>> import numpy as np, pandas as pd
    >>> rng = np.random.default_rng(0)
    >>> def orders(n: int, south_shift: float) -> pd.DataFrame:
    ...     region = np.where(np.arange(n) % 2 == 0, "south", "north")
    ...     amount = rng.normal(0, 1, n) + np.where(region == "south", south_shift, 0.0)
    ...     return pd.DataFrame({"amount": amount, "channel": rng.choice(["web", "app"], n), "region": region})
    >>> config = DriftConfig(numeric_features=("amount",), categorical_features=("channel",),
    ...                      segment_columns=("region",), excluded_features=(), multivariate=False)
    >>> report = build_drift_report(orders(4000, 0.0), orders(4000, 1.0), config)
    >>> report.scope, report.severity_level, report.affected_segments
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
        column: CategoricalCodes(*factorize_pair(reference[column], current[column]))
        for column in dict.fromkeys((*config.tested_categorical, *config.segment_columns))
    }
    segment_codes = {column: categorical_codes[column] for column in config.segment_columns}

    raw_tests = run_feature_tests(reference, current, config, categorical_codes, segment_codes)
    global_raw = [t for t in raw_tests if t.segment_column == GLOBAL_SEGMENT]
    feature_results = finalise(global_raw, config)

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
    segment_results = finalise(segment_raw, config)

    unseen_rows = {feature: unseen_flags(categorical_codes[feature]) for feature in config.tested_categorical}
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

    multivariate = multivariate_mmd(reference, current, config) if config.multivariate else None
    prediction_drift = (
        model_output_drift(reference_score_values, current_score_values, config)
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
        if unseen_globally or any(segment_hit(s, feature, config) for s in segments):
            evidence.setdefault(feature, 0.0)
    drifted_features = tuple(sorted(evidence, key=lambda f: -evidence[f]))
    localisations = [localise_feature(f, segments, segment_codes, n_current, config) for f in drifted_features]
    scope = decide_scope(localisations, segment_codes, n_current, config)
    severity, level, components = score_severity(
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
