"""Where the data drifted: the scope rule (``none | local | global``), applied per drifted feature.

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
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ct_assets.core.monitoring.drift.types import DriftConfig, FeatureLocalisation, SegmentDrift
from ct_assets.core.monitoring.drift.univariate import CategoricalCodes


@dataclass(frozen=True)
class Scope:
    """The report's scope, the segment column(s) a local shift is confined to, and their traffic."""

    scope: str
    dimension: str | None
    affected_segments: tuple[str, ...]
    affected_traffic_share: float


def segment_hit(segment: SegmentDrift, feature: str, config: DriftConfig) -> bool:
    """Does ``feature`` show drift (a drifted test or unseen categories) in ``segment``?"""
    tested_drift = any(r.feature == feature and r.drifted for r in segment.results)
    return tested_drift or segment.unseen_share.get(feature, 0.0) >= config.unseen_share_threshold


def _segment_signal(segment: SegmentDrift, feature: str, config: DriftConfig) -> float:
    """Strength of ``feature``'s shift in ``segment`` in threshold units (effect or unseen share)."""
    effect = max((r.effect_ratio for r in segment.results if r.feature == feature), default=0.0)
    return max(effect, segment.unseen_share.get(feature, 0.0) / config.unseen_share_threshold)


def _traffic_share(names: list[str], segment_codes: dict[str, CategoricalCodes], n_current: int) -> float:
    """Share of current rows that fall in at least one of the named segments."""
    in_any = np.zeros(n_current, dtype=bool)
    for name in names:
        column, value = name.split("=", 1)
        codes = segment_codes[column]
        in_any |= codes.current == codes.labels.index(value)
    return float(in_any.mean())


def localise_feature(
    feature: str,
    segments: list[SegmentDrift],
    segment_codes: dict[str, CategoricalCodes],
    n_current: int,
    config: DriftConfig,
) -> FeatureLocalisation:
    """Apply the scope rule (module docstring) to one drifted feature."""
    candidates = []
    for column in config.segment_columns:
        if column == feature:  # constant within its own segments
            continue
        tested = [s for s in segments if s.column == column and not s.skipped]
        hit = [s for s in tested if segment_hit(s, feature, config)]
        if len(tested) >= 2 and 0 < len(hit) <= config.local_max_segment_share * len(tested):
            weakest_hit = min(_segment_signal(s, feature, config) for s in hit)
            strongest_miss = max((_segment_signal(s, feature, config) for s in tested if s not in hit), default=0.0)
            candidates.append((weakest_hit - strongest_miss, -sum(s.traffic_share for s in hit), column, hit))
    if candidates:
        _, negative_traffic, column, hit = max(candidates, key=lambda c: (c[0], c[1]))
        return FeatureLocalisation(feature, "local", column, tuple(s.name for s in hit), float(-negative_traffic))
    hit = [s.name for s in segments if not s.skipped and segment_hit(s, feature, config)]
    # Drift seen only in whole-batch tests is spread too thin to pin on any segment: all traffic.
    traffic = _traffic_share(hit, segment_codes, n_current) if hit else 1.0
    return FeatureLocalisation(feature, "global", None, tuple(hit), traffic)


def decide_scope(
    localisations: list[FeatureLocalisation],
    segment_codes: dict[str, CategoricalCodes],
    n_current: int,
    config: DriftConfig,
) -> Scope:
    """Combine per-feature localisations: global if any feature is global, local if all are."""
    if not localisations:
        return Scope("none", None, (), 0.0)
    scope = "global" if any(loc.scope == "global" for loc in localisations) else "local"
    segments = list(dict.fromkeys(name for loc in localisations for name in loc.segments))
    if scope == "global":
        traffic = _traffic_share(segments, segment_codes, n_current) if segments else 1.0
        return Scope("global", None, tuple(segments), max(traffic, max(loc.traffic_share for loc in localisations)))
    dimensions = [c for c in config.segment_columns if any(loc.dimension == c for loc in localisations)]
    return Scope("local", ",".join(dimensions), tuple(segments), _traffic_share(segments, segment_codes, n_current))
