"""What each field of the policy's :class:`~ct_assets.core.decision.policy.Evidence` means, from plain values.

Two readers gather the inputs: ``core/decision/evidence.py`` from the warehouse's summary tables, and the
backtest's replay (``core/backtest/strategies.py``) from its replay state. Both hand them to
:func:`build_evidence`, so a day of the live pipeline and a batch of a backtest mean the same thing by
construction. Periods are whole numbers: a day's ordinal live, a batch number in the replay.

>>> from ct_assets.core.decision.policy_config import load_policy_config
>>> config = load_policy_config()
>>> evidence = build_evidence(
...     config, drift=DriftSummary("global", 0.6, "high"),
...     concept=ConceptSummary(degraded=True, auc=MetricChange(0.90, 0.82, ci_high=-0.03)),
...     labels=LabelCounts(since_training=5_000, since_shift_start=1_200, recent_labelled=700, recent_orders=1_000),
...     production=ProductionSummary(age_days=4.0, fine_tunes_since_full_retrain=1),
...     cost=CostHistory(spent_in_period=100.0, retrain_costs=(50.0, 70.0, 60.0)))
>>> round(evidence.metric_drop, 2), evidence.labelled_rows_new_regime, evidence.label_coverage_recent
(0.08, 1200, 0.7)
>>> evidence.retrain_cost_estimate, evidence.fine_tune_cost_estimate
(60.0, None)
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field

from ct_assets.core.data import schema
from ct_assets.core.decision.policy import Evidence, compute_budget_left
from ct_assets.core.decision.policy_config import PolicyConfig

AUC_METRIC = "auc"  # the policy's metric thresholds are in AUC points, whatever else a test reports
ERROR_METRIC = "error_rate"  # the concept test's metric the avoidable errors are counted in
COST_HISTORY_RUNS = 5  # measured runs per training path whose median is the cost estimate
TRAINING_PATHS: tuple[str, ...] = ("retrain", "fine_tune")  # the paths with a cost estimate
_REGION_PREFIX = "region="


@dataclass(frozen=True)
class DriftSummary:
    """The period's drift report as the policy reads it; the defaults are "no report, no drift"."""

    scope: str = "none"
    severity_score: float = 0.0
    severity_level: str = "none"
    affected_segments: tuple[str, ...] = ()
    drifted_features: tuple[str, ...] = ()
    unseen_category_share: float = 0.0  # the largest share of rows with unseen values of one feature


@dataclass(frozen=True)
class MetricChange:
    """One metric on the reference and the current window, with the upper bound of the bootstrap
    interval of ``current - reference``."""

    reference_value: float
    current_value: float
    ci_high: float


@dataclass(frozen=True)
class ConceptSummary:
    """The period's concept-drift result; the defaults are "no result": no drift, no metric drop."""

    degraded: bool = False
    covariate_drift_small: bool = False
    auc: MetricChange | None = None


@dataclass(frozen=True)
class ComplaintSummary:
    """The period's complaint test; the defaults are "rate at baseline"."""

    alert: bool = False
    rate_ratio: float = 1.0


@dataclass(frozen=True)
class LabelCounts:
    """Labelled rows usable now: of rows after the production model's data, of rows since the current
    shift started (``None``: no ongoing shift), and of the recent window next to its orders; the typical
    labelled rows per period, and the periods that bound a regime window."""

    since_training: int = 0
    since_shift_start: int | None = None
    recent_labelled: int = 0
    recent_orders: int = 0
    typical_batch_rows: int = 0  # labelled rows of a typical period (median); scales the label thresholds
    newest_period: int | None = None  # the newest labelled period
    shift_start_period: int | None = None  # first period of the current shift (None: no ongoing shift)


@dataclass(frozen=True)
class BatchError:
    """The serving model on one labelled period: rows, its error rate there, and its reference error rate
    (on its training-time holdout)."""

    period: int
    rows: int
    error_rate: float
    reference_error: float


@dataclass(frozen=True)
class ErrorHistory:
    """The serving model's labelled error per period since it was trained (oldest first; ``measured``
    False: unknown), and the newest candidate rejected since then: its path, period, and the labels since."""

    batches: Sequence[BatchError] = ()
    measured: bool = False
    rejected_path: str | None = None
    rejected_period: int | None = None
    labels_since_rejection: int = 0


@dataclass(frozen=True)
class ProductionSummary:
    """The production model: periods since its data ends, fine-tunes since the last full retrain."""

    age_days: float
    fine_tunes_since_full_retrain: int
    fine_tune_divergence: float | None = None


@dataclass(frozen=True)
class CostHistory:
    """What the runs of the budget period spent and the measured cost of past runs per path, newest first."""

    spent_in_period: float = 0.0
    retrain_costs: Sequence[float] = ()
    fine_tune_costs: Sequence[float] = ()


@dataclass(frozen=True)
class PolicyInputs:
    """What the caller decides rather than the data: risk tier, the two operator flags, the report ids."""

    risk_tier: str = "low"
    architecture_change_required: bool = False
    rapid_rollback_needed: bool = False
    evidence_ids: Mapping[str, str] = field(default_factory=dict)


def is_shifted(drift_scope: str, drift_severity: float, concept_degraded: bool, config: PolicyConfig) -> bool:
    """A period is shifted when its drift passes the policy's drift threshold with a scope, or its
    concept drift degraded.

    >>> from ct_assets.core.decision.policy_config import load_policy_config
    >>> config = load_policy_config()
    >>> is_shifted("local", config.drift.min_severity_score, False, config), is_shifted("none", 1.0, False, config)
    (True, False)
    """
    return (drift_scope != "none" and drift_severity >= config.drift.min_severity_score) or concept_degraded


def shift_start(shifted: Collection[int], newest: int) -> int | None:
    """First period of the unbroken run of shifted periods ending on ``newest`` (None if it is not shifted).

    >>> shift_start({3, 5, 6, 7}, 7), shift_start({3, 5, 6}, 7)
    (5, None)
    """
    start, current = None, newest
    while current in shifted:
        start, current = current, current - 1
    return start


def drop_counts(change: MetricChange) -> bool:
    """A drop counts only when the interval of ``current - reference`` lies wholly below zero: a point
    estimate inside its noise must not trigger the falling-metric rule.

    >>> drop_counts(MetricChange(0.9, 0.8, ci_high=-0.01)), drop_counts(MetricChange(0.9, 0.8, ci_high=0.01))
    (True, False)
    """
    return change.ci_high < 0


def metric_drop(change: MetricChange | None) -> float:
    """Reference minus current metric when the drop counts (:func:`drop_counts`), else 0."""
    if change is None or not drop_counts(change):
        return 0.0
    return float(change.reference_value - change.current_value)


def excess_errors(batch: BatchError, noise_z: float) -> float:
    """Errors above the reference error rate beyond the batch's noise (``noise_z`` binomial standard
    errors at the reference rate), never negative: a 200-row batch must not look worse by chance.

    >>> round(excess_errors(BatchError(0, 1000, 0.20, 0.10), 2.0), 1)  # 200 errors, 100 expected, noise 19
    81.0
    >>> excess_errors(BatchError(0, 200, 0.13, 0.10), 2.0)  # 26 errors vs 20 +- 8.5: noise
    0.0
    """
    expected = batch.rows * batch.reference_error
    noise = noise_z * math.sqrt(batch.rows * batch.reference_error * (1.0 - batch.reference_error))
    return max(0.0, batch.rows * batch.error_rate - expected - noise)


def excess_run_start(batches: Sequence[BatchError], noise_z: float) -> int | None:
    """First period of the unbroken run of periods with excess errors ending on the newest (None if the
    newest has none).

    >>> run = [BatchError(p, 1000, e, 0.1) for p, e in ((3, 0.3), (4, 0.1), (5, 0.3), (6, 0.25))]
    >>> excess_run_start(run, 2.0), excess_run_start(run[:2], 2.0)
    (5, None)
    """
    start = None
    for batch in reversed(batches):
        if excess_errors(batch, noise_z) <= 0:
            break
        start = batch.period
    return start


def regime_window(regime_start: int, newest: int, min_batches: float) -> tuple[int, str]:
    """Where a retrain's window starts: at the new regime, topped up with older periods only while the new
    regime holds fewer than ``min_batches`` batches; with why, in plain language.

    >>> regime_window(8, 12, 2.5)
    (8, 'the new regime since period 8 (5 batches)')
    >>> regime_window(12, 12, 2.5)
    (10, 'the new regime since period 12, topped up with older rows to 3 batches')
    """
    needed = max(1, math.ceil(min_batches))
    if newest - regime_start + 1 >= needed:
        return regime_start, f"the new regime since period {regime_start} ({newest - regime_start + 1} batches)"
    first = newest - needed + 1
    return first, f"the new regime since period {regime_start}, topped up with older rows to {needed} batches"


def cost_estimate(costs_newest_first: Sequence[float]) -> float | None:
    """Median of the newest :data:`COST_HISTORY_RUNS` measured costs; None when none was measured.

    >>> cost_estimate([10.0, 30.0, 20.0, 1.0, 1.0, 500.0]), cost_estimate([])
    (10.0, None)
    """
    recent = list(costs_newest_first)[:COST_HISTORY_RUNS]
    return float(statistics.median(recent)) if recent else None


def label_coverage(labelled: int, orders: int) -> float:
    """Labelled share of the recent window's orders (0 with no orders, at most 1)."""
    return min(1.0, labelled / orders) if orders else 0.0


def model_age(newest: int, trained_through: int) -> float:
    """Periods from the end of the production model's data to ``newest``, never negative."""
    return float(max(0, newest - trained_through))


def affected_regions(scope: str, segments: Sequence[str]) -> tuple[str, ...]:
    """Regions whose traffic shifted: the named regions of a region-only local shift, else every region.

    A global shift, or a local one along another dimension (a category, a protected group), reaches
    orders in every region, so every region's sign-off rule applies.

    >>> affected_regions("local", ("region=south",)), affected_regions("none", ())
    (('south',), ())
    """
    if scope == "none":
        return ()
    if scope == "local" and segments and all(segment.startswith(_REGION_PREFIX) for segment in segments):
        return tuple(segment[len(_REGION_PREFIX):] for segment in segments)
    return schema.REGIONS


def build_evidence(config: PolicyConfig, *, drift: DriftSummary = DriftSummary(),
                   concept: ConceptSummary = ConceptSummary(), complaints: ComplaintSummary = ComplaintSummary(),
                   labels: LabelCounts = LabelCounts(), production: ProductionSummary | None = None,
                   cost: CostHistory = CostHistory(), regions: tuple[str, ...] = (),
                   errors: ErrorHistory = ErrorHistory(), inputs: PolicyInputs = PolicyInputs()) -> Evidence:
    """The policy's evidence from the gathered inputs; ``production=None`` means there is no production model.

    Without an ongoing shift the new regime is everything since training. ``regions`` are the regions
    whose traffic shifted (:func:`affected_regions` where the data names regions). Avoidable errors count
    from the later of the update and the last rejection; the new regime of a retrain's window starts at
    the current run of excess errors, else at the detected shift start.
    """
    since_training = labels.since_training
    noise_z = config.avoidable_loss.noise_z
    counted = [batch for batch in errors.batches
               if errors.rejected_period is None or batch.period > errors.rejected_period]
    regime_start = excess_run_start(errors.batches, noise_z)
    if regime_start is None:
        regime_start = labels.shift_start_period
    window: tuple[int | None, str] = (None, "")
    if regime_start is not None and labels.newest_period is not None and production is not None:
        window = regime_window(regime_start, labels.newest_period, config.labels.min_batches_for_retrain)
    return Evidence(
        drift_scope=drift.scope,
        drift_severity_score=float(drift.severity_score),
        drift_severity_level=drift.severity_level,
        affected_segments=tuple(drift.affected_segments),
        drifted_features=tuple(drift.drifted_features),
        unseen_category_share=float(drift.unseen_category_share),
        concept_drift_detected=concept.degraded,
        metric_drop=metric_drop(concept.auc),
        covariate_drift_small=concept.covariate_drift_small,
        complaint_alert=complaints.alert,
        complaint_rate_ratio=float(complaints.rate_ratio),
        new_labels_since_training=since_training,
        label_coverage_recent=label_coverage(labels.recent_labelled, labels.recent_orders),
        labelled_rows_new_regime=since_training if labels.since_shift_start is None else labels.since_shift_start,
        production_model_age_days=0.0 if production is None else production.age_days,
        fine_tunes_since_full_retrain=0 if production is None else production.fine_tunes_since_full_retrain,
        fine_tune_divergence=None if production is None else production.fine_tune_divergence,
        compute_budget_left=compute_budget_left(max(0.0, float(cost.spent_in_period)), config),
        retrain_cost_estimate=cost_estimate(cost.retrain_costs),
        fine_tune_cost_estimate=cost_estimate(cost.fine_tune_costs),
        risk_tier=inputs.risk_tier,
        production_model_exists=production is not None,
        typical_batch_rows=labels.typical_batch_rows,
        avoidable_errors=sum(excess_errors(b, noise_z) for b in counted) if errors.measured else None,
        avoidable_rows=sum(batch.rows for batch in counted),
        rejected_path=errors.rejected_path,
        labels_since_rejection=errors.labels_since_rejection,
        regime_window_start=window[0],
        regime_window_reason=window[1],
        affected_regions=regions,
        architecture_change_required=inputs.architecture_change_required,
        rapid_rollback_needed=inputs.rapid_rollback_needed,
        evidence_ids=inputs.evidence_ids,
    )
