"""Concept drift: did the production model get worse on freshly labelled data?

``detect_concept_drift`` compares the production model's AUC, log-loss and error rate on the
current labelled window with the same metrics on its reference window. Each difference
(current - reference) gets a seeded percentile-bootstrap confidence interval, resampling both
windows independently. A metric has *degraded* when the whole interval lies on the bad side of
zero **and** the point difference reaches a practical minimum (``min_auc_drop`` etc.), so tiny but
significant wobbles on big windows do not count.

Verdict: ``insufficient_labels`` (too few labelled rows on a side), ``degraded`` (any metric
degraded), ``improved`` (some metric improved, none degraded) or ``stable``.

P(y|X) versus P(X): a performance drop alone cannot say whether the inputs moved (covariate
drift) or the input->label relation moved. Given the covariate drift severity of the same window
(``DriftReport.severity``), ``covariate_drift_small`` says whether that severity is below
``max_covariate_severity``; ``beyond_covariate`` is set when the model degraded while covariate
drift was small, i.e. the change is in P(y|X) rather than explained by P(X).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

LOG_LOSS_CLIP = 1e-7  # keeps log-loss finite for scores of exactly 0 or 1
_BOOTSTRAP_CHUNK = 25  # bootstrap replicates evaluated together (bounds memory at ~n * 25 floats)


@dataclass(frozen=True)
class ConceptDriftConfig:
    """Thresholds of the concept-drift test."""

    n_bootstrap: int = 300
    confidence: float = 0.95
    decision_threshold: float = 0.5
    min_labelled_rows: int = 200
    min_class_rows: int = 10
    min_auc_drop: float = 0.02
    min_log_loss_increase: float = 0.02
    min_error_rate_increase: float = 0.01
    max_covariate_severity: float = 0.3
    seed: int = 0

    def __post_init__(self) -> None:
        if self.n_bootstrap < 50:
            raise ValueError(f"n_bootstrap must be at least 50, got {self.n_bootstrap}")
        if not 0.5 < self.confidence < 1.0:
            raise ValueError(f"confidence must be in (0.5, 1), got {self.confidence}")
        if not 0.0 < self.decision_threshold < 1.0:
            raise ValueError(f"decision_threshold must be in (0, 1), got {self.decision_threshold}")
        if self.min_labelled_rows < 2 or self.min_class_rows < 1:
            raise ValueError("min_labelled_rows must be >= 2 and min_class_rows >= 1")
        for name in ("min_auc_drop", "min_log_loss_increase", "min_error_rate_increase", "max_covariate_severity"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be non-negative, got {getattr(self, name)}")


@dataclass(frozen=True)
class MetricShift:
    """One metric on both windows, the difference (current - reference) and its bootstrap CI."""

    metric: str  # "auc" | "log_loss" | "error_rate"
    higher_is_better: bool
    reference_value: float
    current_value: float
    difference: float
    ci_low: float
    ci_high: float
    degraded: bool
    improved: bool


@dataclass(frozen=True)
class ConceptDriftResult:
    """Verdict on the production model's performance change, with the evidence."""

    verdict: str  # "insufficient_labels" | "stable" | "degraded" | "improved"
    metrics: tuple[MetricShift, ...]
    n_reference: int
    n_current: int
    reference_positive_rate: float
    current_positive_rate: float
    covariate_severity: float | None
    covariate_drift_small: bool | None
    beyond_covariate: bool
    n_bootstrap: int
    reason: str

    @property
    def concept_drift(self) -> bool:
        return self.verdict == "degraded"

    def metric(self, name: str) -> MetricShift:
        for shift in self.metrics:
            if shift.metric == name:
                return shift
        raise ValueError(f"metric {name!r} not computed; have {[m.metric for m in self.metrics]}")

    def to_summary(self) -> dict[str, Any]:
        """Flat JSON-able dict for asset metadata (untestable values become -1.0)."""
        summary: dict[str, Any] = {
            "verdict": self.verdict,
            "concept_drift": self.concept_drift,
            "beyond_covariate": self.beyond_covariate,
            "covariate_drift_small": "unknown" if self.covariate_drift_small is None else self.covariate_drift_small,
            "n_reference": self.n_reference,
            "n_current": self.n_current,
            "reason": self.reason,
        }
        for shift in self.metrics:
            for field_name in ("reference_value", "current_value", "difference", "ci_low", "ci_high"):
                value = getattr(shift, field_name)
                summary[f"{shift.metric}.{field_name}"] = round(float(value), 6) if np.isfinite(value) else -1.0
            summary[f"{shift.metric}.degraded"] = shift.degraded
        return summary


def _as_labels_and_scores(labels: Any, scores: Any, name: str) -> tuple[np.ndarray, np.ndarray]:
    label_values = np.asarray(labels).reshape(-1)
    score_values = np.asarray(scores, dtype=np.float64).reshape(-1)
    if label_values.shape[0] != score_values.shape[0]:
        raise ValueError(f"{name}: {label_values.shape[0]} labels but {score_values.shape[0]} scores")
    if label_values.shape[0] and not np.isin(label_values, (0, 1)).all():
        raise ValueError(f"{name}: labels must be 0/1")
    out_of_range = score_values.size and (score_values.min() < 0 or score_values.max() > 1)
    if not np.all(np.isfinite(score_values)) or out_of_range:
        raise ValueError(f"{name}: scores must be finite probabilities in [0, 1]")
    return label_values.astype(np.float64), score_values


@dataclass(frozen=True)
class _Window:
    """Labels and scores of one window, sorted by score, with tie groups for a weighted AUC."""

    labels: np.ndarray
    scores: np.ndarray
    tie_starts: np.ndarray
    losses: np.ndarray
    errors: np.ndarray
    has_both_classes: bool


def _window(labels: np.ndarray, scores: np.ndarray, config: ConceptDriftConfig) -> _Window:
    order = np.argsort(scores, kind="stable")
    sorted_scores, sorted_labels = scores[order], labels[order]
    clipped = np.clip(sorted_scores, LOG_LOSS_CLIP, 1.0 - LOG_LOSS_CLIP)
    positives = int(sorted_labels.sum())
    return _Window(
        labels=sorted_labels,
        scores=sorted_scores,
        tie_starts=np.flatnonzero(np.r_[True, sorted_scores[1:] != sorted_scores[:-1]]),
        losses=-(sorted_labels * np.log(clipped) + (1.0 - sorted_labels) * np.log(1.0 - clipped)),
        errors=((sorted_scores >= config.decision_threshold) != (sorted_labels == 1.0)).astype(np.float64),
        has_both_classes=min(positives, len(sorted_labels) - positives) >= config.min_class_rows,
    )


def _metrics_under_weights(window: _Window, weights: np.ndarray) -> dict[str, np.ndarray]:
    """AUC, log-loss and error rate for each row of ``weights`` (replicates x rows, score order).

    AUC is the weighted Mann-Whitney statistic: each positive scores the negative weight below it
    plus half the negative weight tied with it.
    """
    total = weights.sum(axis=1)
    metrics = {
        "log_loss": weights @ window.losses / total,
        "error_rate": weights @ window.errors / total,
    }
    if window.has_both_classes:
        positive = np.add.reduceat(weights * window.labels, window.tie_starts, axis=1)
        negative = np.add.reduceat(weights * (1.0 - window.labels), window.tie_starts, axis=1)
        negative_below = np.cumsum(negative, axis=1) - negative
        with np.errstate(divide="ignore", invalid="ignore"):
            metrics["auc"] = (positive * (negative_below + 0.5 * negative)).sum(axis=1) / (
                positive.sum(axis=1) * negative.sum(axis=1)
            )
    return metrics


def _bootstrap(window: _Window, n_bootstrap: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Metric values over ``n_bootstrap`` resamples with replacement (multiplicity weights)."""
    n = window.labels.shape[0]
    collected: dict[str, list[np.ndarray]] = {}
    for start in range(0, n_bootstrap, _BOOTSTRAP_CHUNK):
        replicates = min(_BOOTSTRAP_CHUNK, n_bootstrap - start)
        weights = np.stack([np.bincount(rng.integers(0, n, n), minlength=n) for _ in range(replicates)]).astype(
            np.float64
        )
        for name, values in _metrics_under_weights(window, weights).items():
            collected.setdefault(name, []).append(values)
    return {name: np.concatenate(parts) for name, parts in collected.items()}


def detect_concept_drift(
    reference_labels: Any,
    reference_scores: Any,
    current_labels: Any,
    current_scores: Any,
    config: ConceptDriftConfig | None = None,
    covariate_severity: float | None = None,
) -> ConceptDriftResult:
    """Compare the production model's performance on the current vs the reference labelled window.

    ``*_scores`` are the model's P(label = 1); ``covariate_severity`` is the data-drift severity
    (0..1) of the current window, used only for ``covariate_drift_small`` / ``beyond_covariate``.

    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> y_ref, y_now = rng.integers(0, 2, 2000), rng.integers(0, 2, 2000)
    >>> p_ref = 0.2 + 0.6 * y_ref + rng.uniform(-0.2, 0.2, 2000)  # the scores separate the classes
    >>> p_now = rng.uniform(0, 1, 2000)  # they no longer do
    >>> result = detect_concept_drift(y_ref, p_ref, y_now, p_now, covariate_severity=0.05)
    >>> result.verdict, round(result.metric("auc").difference, 1), result.beyond_covariate
    ('degraded', -0.5, True)
    """
    config = config or ConceptDriftConfig()
    ref_labels, ref_scores = _as_labels_and_scores(reference_labels, reference_scores, "reference")
    cur_labels, cur_scores = _as_labels_and_scores(current_labels, current_scores, "current")
    if covariate_severity is not None and not 0.0 <= covariate_severity <= 1.0:
        raise ValueError(f"covariate_severity must be in [0, 1], got {covariate_severity}")
    covariate_small = None if covariate_severity is None else covariate_severity < config.max_covariate_severity

    def rate(labels: np.ndarray) -> float:
        return float(labels.mean()) if labels.size else float("nan")

    common = dict(
        n_reference=int(ref_labels.size), n_current=int(cur_labels.size),
        reference_positive_rate=rate(ref_labels), current_positive_rate=rate(cur_labels),
        covariate_severity=covariate_severity, covariate_drift_small=covariate_small, n_bootstrap=config.n_bootstrap,
    )
    if min(ref_labels.size, cur_labels.size) < config.min_labelled_rows:
        return ConceptDriftResult(
            verdict="insufficient_labels", metrics=(), beyond_covariate=False,
            reason=f"need {config.min_labelled_rows} labelled rows per window, "
                   f"have reference {ref_labels.size}, current {cur_labels.size}",
            **common,
        )

    reference_window = _window(ref_labels, ref_scores, config)
    current_window = _window(cur_labels, cur_scores, config)
    ref_point = _metrics_under_weights(reference_window, np.ones((1, ref_labels.size)))
    cur_point = _metrics_under_weights(current_window, np.ones((1, cur_labels.size)))
    rng = np.random.default_rng(config.seed)
    ref_boot = _bootstrap(reference_window, config.n_bootstrap, rng)
    cur_boot = _bootstrap(current_window, config.n_bootstrap, rng)

    tail = (1.0 - config.confidence) / 2.0
    minimum_change = {
        "auc": config.min_auc_drop,
        "log_loss": config.min_log_loss_increase,
        "error_rate": config.min_error_rate_increase,
    }
    shifts = []
    for metric in ("auc", "log_loss", "error_rate"):
        if metric not in ref_point or metric not in cur_point:
            continue  # AUC needs both classes in both windows
        higher_is_better = metric == "auc"
        difference = float(cur_point[metric][0] - ref_point[metric][0])
        ci_low, ci_high = (float(q) for q in np.nanquantile(cur_boot[metric] - ref_boot[metric], [tail, 1.0 - tail]))
        worse_side = ci_high < 0 if higher_is_better else ci_low > 0
        better_side = ci_low > 0 if higher_is_better else ci_high < 0
        harm = -difference if higher_is_better else difference
        shifts.append(
            MetricShift(
                metric=metric, higher_is_better=higher_is_better,
                reference_value=float(ref_point[metric][0]), current_value=float(cur_point[metric][0]),
                difference=difference, ci_low=ci_low, ci_high=ci_high,
                degraded=bool(worse_side and harm >= minimum_change[metric]),
                improved=bool(better_side and -harm >= minimum_change[metric]),
            )
        )

    degraded = [s.metric for s in shifts if s.degraded]
    improved = [s.metric for s in shifts if s.improved]
    if degraded:
        verdict, reason = "degraded", f"worse {', '.join(degraded)} (CI excludes 0 and change beyond minimum)"
    elif improved:
        verdict, reason = "improved", f"better {', '.join(improved)}"
    else:
        verdict, reason = "stable", "no metric changed beyond its CI and minimum"
    return ConceptDriftResult(
        verdict=verdict, metrics=tuple(shifts), beyond_covariate=bool(degraded) and covariate_small is True,
        reason=reason, **common,
    )
