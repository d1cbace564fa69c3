"""Quality gates a candidate model must pass before promotion, as pure functions.

Each gate returns a :class:`GateResult` saying whether it passed, how serious a failure is, the
numbers it looked at, the threshold it applied and, in plain language, why. The metrics come from
:mod:`ct_assets.core.release.metrics`; fairlearn is imported inside the fairness gate (it is slow
to import). The gates comparing both models' metric on the same rows are
:mod:`ct_assets.core.release.holdout_gates`; which gates judge a candidate, on which rows, is
:mod:`ct_assets.core.release.lineup`.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Mapping

import numpy as np

from ct_assets.core.data import schema
from ct_assets.core.release.metrics import (
    Metric,
    binary_labels,
    check_metric,
    expected_calibration_error,
    higher_is_better,
    metric_fn,
    probabilities,
    single_feature_aucs,
)

if TYPE_CHECKING:
    import pandas as pd

Severity = Literal["error", "warning"]


@dataclass(frozen=True)
class GateResult:
    """Outcome of one gate. ``metrics`` holds the numbers behind the decision."""

    name: str
    passed: bool
    severity: Severity
    metrics: dict[str, Any] = field(default_factory=dict)
    threshold: dict[str, Any] = field(default_factory=dict)
    reason: str = ""

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form; non-finite numbers become None."""
        return _json_safe(asdict(self))


def _json_safe(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    return value


def check_severity(severity: str) -> None:
    if severity not in ("error", "warning"):
        raise ValueError(f"severity must be 'error' or 'warning', got {severity!r}")


def paired_scores(y_true: Any, candidate_scores: Any, production_scores: Any | None,
                   severity: str, metric: str | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """The checked labels and both models' scores on the same rows (production None without a model)."""
    if metric is not None:
        check_metric(metric)
    check_severity(severity)
    y = binary_labels(y_true)
    candidate = probabilities(candidate_scores, len(y), "candidate_scores")
    production = None if production_scores is None else probabilities(production_scores, len(y), "production_scores")
    return y, candidate, production


def fairness_gate(
    y_true: Any,
    candidate_scores: Any,
    production_scores: Any | None,
    groups: Any,
    metric: Metric = "auc",
    tolerance: float = 0.02,
    max_gap_widening: float = 0.02,
    min_group_size: int = 30,
    severity: Severity = "error",
    max_gap: float | None = None,
) -> GateResult:
    """No protected group may get worse by more than ``tolerance``; the between-group gap may not widen.

    ``max_gap`` (absolute, metric units) also fails a candidate whose gap between groups exceeds it
    unless the candidate narrows production's gap by more than ``tolerance``: when one group's
    relation moved (``group_shift``) and no candidate can serve it as well as the others, a human
    must decide (new features, a per-group model) instead of automation promoting an unfair model.

    Per-group metrics come from fairlearn's ``MetricFrame`` (absolute metric units). Groups with fewer
    than ``min_group_size`` rows, or where the metric is undefined (AUC on one class), are reported
    and skipped. Without a production model it passes and reports the candidate's groups.

    Example: ``fairness_gate(y, cand_p, prod_p, df["protected_group"], tolerance=0.01)``.
    """
    import pandas as pd
    from fairlearn.metrics import MetricFrame

    if tolerance < 0 or max_gap_widening < 0 or min_group_size < 1 or (max_gap is not None and max_gap < 0):
        raise ValueError("need tolerance >= 0, max_gap_widening >= 0, max_gap >= 0 and min_group_size >= 1")
    y, cand, prod = paired_scores(y_true, candidate_scores, production_scores, severity, metric)
    group_values = pd.Series(np.asarray(groups, dtype="object").reshape(-1)).astype("string")
    if len(group_values) != len(y):
        raise ValueError(f"groups: {len(group_values)} values for {len(y)} labels")
    if group_values.isna().any():
        raise ValueError("groups contain missing values")
    score = metric_fn(metric)
    sizes = group_values.value_counts()
    small = sorted(str(g) for g in sizes[sizes < min_group_size].index)

    def by_group(scores: np.ndarray) -> dict[str, float]:
        frame = MetricFrame(metrics=score, y_true=y, y_pred=scores, sensitive_features=group_values.to_numpy())
        return {str(g): float(v) for g, v in frame.by_group.items() if str(g) not in small}

    cand_groups = by_group(cand)
    threshold = {"metric": metric, "tolerance": tolerance, "max_gap_widening": max_gap_widening,
                 "max_gap": max_gap, "min_group_size": min_group_size}
    if prod is None:
        skipped = sorted(small + [g for g, v in cand_groups.items() if math.isnan(v)])
        return GateResult("fairness", True, severity, {"candidate_by_group": cand_groups, "skipped_groups": skipped},
                          threshold, "no production model to compare against")
    prod_groups = by_group(prod)
    compared = sorted(g for g in cand_groups if not (math.isnan(cand_groups[g]) or math.isnan(prod_groups[g])))
    skipped = sorted(small + [g for g in cand_groups if g not in compared])
    note = f" (skipped groups: {', '.join(skipped)})" if skipped else ""
    if not compared:
        raise ValueError(f"fairness_gate: no group has enough rows with both classes to compare{note}")

    sign = 1.0 if higher_is_better(metric) else -1.0
    regression = {g: sign * (prod_groups[g] - cand_groups[g]) for g in compared}

    def gap(values: dict[str, float]) -> float:
        chosen = [values[g] for g in compared]
        return max(chosen) - min(chosen)

    cand_gap, prod_gap = gap(cand_groups), gap(prod_groups)
    metrics = {"candidate_by_group": cand_groups, "production_by_group": prod_groups, "regression_by_group": regression,
               "candidate_gap": cand_gap, "production_gap": prod_gap, "gap_widening": cand_gap - prod_gap,
               "skipped_groups": skipped}
    failures = [f"group {g} {metric} {prod_groups[g]:.4f} -> {cand_groups[g]:.4f} regresses by {regression[g]:.4f} "
                f"(> tolerance {tolerance})" for g in compared if regression[g] > tolerance]
    if cand_gap - prod_gap > max_gap_widening:
        failures.append(f"between-group gap widens {prod_gap:.4f} -> {cand_gap:.4f} (> {max_gap_widening})")
    elif max_gap is not None and cand_gap > max_gap and cand_gap > prod_gap - tolerance:
        worst = min(compared, key=lambda g: sign * cand_groups[g])
        failures.append(f"between-group gap {cand_gap:.4f} exceeds the cap {max_gap} (group {worst} is served "
                        f"worst) and the candidate does not narrow production's gap {prod_gap:.4f}")
    if failures:
        return GateResult("fairness", False, severity, metrics, threshold, "; ".join(failures) + note)
    return GateResult("fairness", True, severity, metrics, threshold,
                      f"no group regresses by more than {tolerance} and the gap moves {prod_gap:.4f} -> "
                      f"{cand_gap:.4f}{note}")


def leakage_gate(
    features: pd.DataFrame,
    labels: Any,
    max_single_feature_auc: float = 0.97,
    reference_auc: Mapping[str, float] | None = None,
    max_jump: float = 0.15,
    columns: tuple[str, ...] = schema.FEATURE_NUMERIC,
    severity: Severity = "error",
    batches: Any | None = None,
    min_batch_rows: int = 200,
    shifted_features: tuple[str, ...] | None = None,
    concept_drift: bool = False,
) -> GateResult:
    """Fail when a numeric feature alone predicts the label implausibly well, or suddenly much better
    without a shift to explain it.

    A feature fails if its single-feature AUC exceeds ``max_single_feature_auc`` (no genuine feature
    separates the classes almost perfectly), or if it exceeds its ``reference_auc`` (e.g. from the
    production model's training window) by more than ``max_jump`` with nothing to explain it. Two
    things do, and then the jump is reported, not failed. ``shifted_features``, the features the drift
    report found shifted: when a feature's traffic really moved (fraud concentrated where the
    geography shifted) a stronger association is what the shift brings. ``concept_drift``, the
    serving model's own metric degraded: the relation between features and label changed, so single
    features may predict it differently; a leak, by contrast, leaves the model that never saw it as
    good as before. Without either (None: no drift report) every jump fails. The metrics hold every
    column's AUC, ready to serve as the next reference.

    ``batches`` (e.g. each row's day) makes the AUC the highest of any batch with at least
    ``min_batch_rows`` rows and both classes: a bug that started two days into a fortnight's window
    is diluted over the whole window but obvious on its own days.

    Example: a pipeline bug that copies ``is_fraud`` into ``sensor_signal`` gives it AUC 1.0 -> fails.
    """
    check_severity(severity)
    if not 0.5 <= max_single_feature_auc <= 1.0 or max_jump < 0:
        raise ValueError("need 0.5 <= max_single_feature_auc <= 1 and max_jump >= 0")
    aucs = single_feature_aucs(features, labels, columns)
    if batches is not None:
        y = binary_labels(labels)
        batch_values = np.asarray(batches)
        for batch in np.unique(batch_values):
            rows = batch_values == batch
            if rows.sum() < min_batch_rows or len(np.unique(y[rows])) < 2:
                continue
            for column, auc in single_feature_aucs(features.loc[rows], y[rows], columns).items():
                aucs[column] = max(aucs[column], auc)
    reference = dict(reference_auc or {})
    shifted = set(shifted_features or ())
    failures: list[str] = []
    explained: list[str] = []
    for column, auc in aucs.items():
        if auc > max_single_feature_auc:
            failures.append(f"{column} alone has AUC {auc:.4f} > {max_single_feature_auc} (likely label leakage)")
        elif column in reference and auc - reference[column] > max_jump:
            jump = f"{column} AUC jumped {reference[column]:.4f} -> {auc:.4f} (> {max_jump})"
            if column in shifted:
                explained.append(f"{jump}, explained by the drift report's shift in {column}")
            elif concept_drift:
                explained.append(f"{jump}, explained by the detected concept drift")
            else:
                failures.append(f"{jump} while its distribution did not shift; likely leakage")
    threshold = {"max_single_feature_auc": max_single_feature_auc, "max_jump": max_jump,
                 "reference_auc": reference or None,
                 "shifted_features": None if shifted_features is None else sorted(shifted),
                 "concept_drift": concept_drift}
    metrics = {"single_feature_auc": aucs, "max_auc_feature": max(aucs, key=aucs.__getitem__)}
    note = "".join(f"; {text}" for text in explained)
    if failures:
        return GateResult("leakage", False, severity, metrics, threshold, "; ".join(failures) + note)
    return GateResult("leakage", True, severity, metrics, threshold,
                      f"highest single-feature AUC {aucs[metrics['max_auc_feature']]:.4f} "
                      f"({metrics['max_auc_feature']}) is plausible{note}")


def calibration_gate(
    y_true: Any,
    candidate_scores: Any,
    production_scores: Any | None,
    max_ece_increase: float = 0.02,
    n_bins: int = 10,
    severity: Severity = "error",
) -> GateResult:
    """The candidate's expected calibration error may exceed production's by at most ``max_ece_increase``.

    Without a production model it passes and reports the candidate's ECE.
    """
    check_severity(severity)
    if max_ece_increase < 0:
        raise ValueError(f"max_ece_increase must be >= 0, got {max_ece_increase}")
    cand_ece = expected_calibration_error(y_true, candidate_scores, n_bins)
    threshold = {"max_ece_increase": max_ece_increase, "n_bins": n_bins}
    if production_scores is None:
        return GateResult("calibration", True, severity, {"candidate_ece": cand_ece}, threshold,
                          f"no production model: candidate ECE {cand_ece:.4f}")
    prod_ece = expected_calibration_error(y_true, production_scores, n_bins)
    metrics = {"candidate_ece": cand_ece, "production_ece": prod_ece, "ece_increase": cand_ece - prod_ece}
    summary = f"ECE {prod_ece:.4f} -> {cand_ece:.4f}"
    if cand_ece - prod_ece > max_ece_increase:
        return GateResult("calibration", False, severity, metrics, threshold,
                          f"{summary}: worse by more than {max_ece_increase}")
    return GateResult("calibration", True, severity, metrics, threshold, f"{summary}: within {max_ece_increase}")


def selection_bias_gate(
    labelled: Any,
    production_scores: Any | None,
    block_threshold: float = 0.5,
    min_coverage_ratio: float = 0.5,
    min_rows: int = 50,
    severity: Severity = "warning",
) -> GateResult:
    """Warn when labels exist mostly for orders the serving model approved (a feedback loop).

    ``labelled`` marks which rows of the training window got a label; ``production_scores`` are the
    serving model's scores on all of them. If the label coverage of the rows it would block is far
    below that of the rows it approves, the training data only shows the model its own approvals:
    retraining on it narrows the model further. Without a production model there is nothing to check.
    """
    check_severity(severity)
    mask = np.asarray(labelled, dtype=bool)
    if production_scores is None:
        return GateResult("selection_bias", True, severity, {}, {}, "no production model: no feedback loop yet")
    scores = probabilities(production_scores, len(mask), "production_scores")
    blocked = scores > block_threshold
    threshold = {"block_threshold": block_threshold, "min_coverage_ratio": min_coverage_ratio}
    if blocked.sum() < min_rows or (~blocked).sum() < min_rows:
        return GateResult("selection_bias", True, severity, {"blocked_rows": int(blocked.sum())}, threshold,
                          f"too few blocked ({int(blocked.sum())}) or approved rows to compare label coverage")
    blocked_coverage, approved_coverage = float(mask[blocked].mean()), float(mask[~blocked].mean())
    ratio = blocked_coverage / approved_coverage if approved_coverage > 0 else 1.0
    metrics = {"blocked_label_coverage": blocked_coverage, "approved_label_coverage": approved_coverage,
               "coverage_ratio": ratio, "blocked_rows": int(blocked.sum())}
    summary = (f"label coverage {blocked_coverage:.1%} for orders the model blocks vs "
               f"{approved_coverage:.1%} for those it approves (ratio {ratio:.2f})")
    if ratio < min_coverage_ratio:
        return GateResult("selection_bias", False, severity, metrics, threshold,
                          f"{summary} < {min_coverage_ratio}: labels come mostly from the model's own approvals "
                          "(feedback loop); the candidate learns from a biased sample")
    return GateResult("selection_bias", True, severity, metrics, threshold, summary)
