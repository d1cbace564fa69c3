"""Which gates judge a model, on which rows: the one line-up live evaluation, online mode and the backtest share.

The callers only load rows and score them; these pure functions choose the gates and their settings.
A candidate (retrain or fine-tune) faces :func:`candidate_gates`; an online chain, every few updates,
faces :func:`online_chain_gates` against its anchor. :func:`blocking_failures` says which results
stop a model.

>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> y = rng.integers(0, 2, 400)
>>> sharp_but_overconfident = np.where(y == 1, 0.8, 0.2)
>>> gates = candidate_gates(HoldoutScores(y, sharp_but_overconfident, np.full(400, 0.5), groups=None),
...                         GateSettings(n_boot=20))
>>> [(g.name, g.passed) for g in gates]
[('holdout', True), ('non_regression', True), ('calibration', False)]
>>> [g.name for g in blocking_failures(gates)]
['calibration']
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Callable, Iterable, Mapping

import numpy as np
import pandas as pd

from ct_assets.core.release.gates import (
    GateResult,
    calibration_gate,
    fairness_gate,
    holdout_gate,
    leakage_gate,
    non_regression_gate,
    selection_bias_gate,
)

# Holdout rows needed on each side of a local shift to judge a local fine-tune there.
MIN_LOCAL_ROWS = 100


@dataclass(frozen=True)
class GateSettings:
    """The thresholds of every gate (live from ``CTSettings.gate_settings``, in a replay ``BacktestConfig.gates``)."""

    metric: str = "auc"
    margin: float = 0.01  # the seed's example: at least 1 % better
    relative: bool = True
    n_boot: int = 200
    fairness_tolerance: float = 0.02
    max_gap_widening: float = 0.05
    # Absolute cap on the AUC gap between protected groups (None: off); see gates.fairness_gate.
    fairness_max_gap: float | None = 0.05
    max_single_feature_auc: float = 0.97
    leakage_max_jump: float = 0.15
    max_ece_increase: float = 0.02
    non_regression_tolerance: float = 0.01  # a local fine-tune may lose at most this much elsewhere
    seed: int = 0


@dataclass(frozen=True)
class HoldoutScores:
    """Labels of holdout rows and both models' scores on them; ``production`` None without one.

    ``groups``: each row's protected group (None: the data has no protected attribute, no fairness gate).
    """

    labels: np.ndarray
    candidate: np.ndarray
    production: np.ndarray | None
    groups: np.ndarray | None


@dataclass(frozen=True)
class TrainingRows:
    """The candidate's training rows, for the leakage gate: ``batches`` (e.g. days) and the numeric
    ``columns`` to test, with the single-feature AUCs the production model's own leakage gate measured."""

    features: pd.DataFrame
    labels: np.ndarray
    batches: np.ndarray
    columns: tuple[str, ...]
    reference_auc: Mapping[str, float] | None


@dataclass(frozen=True)
class LabelCoverage:
    """Which rows of the candidate's window got a label, and the serving model's scores on all of them."""

    labelled: np.ndarray
    production_scores: np.ndarray | None


@dataclass(frozen=True)
class LocalShift:
    """Holdout rows inside the shifted segments (``rows``, a mask) and their name, e.g. ``region=south``."""

    rows: np.ndarray
    where: str


def select_local_shift(holdout: pd.DataFrame, training_path: str, drift_scope: str | None,
                       affected_segments: Iterable[object]) -> LocalShift | None:
    """The holdout rows of the local shift that led to a fine-tune, if it is judged there.

    Only for a fine-tune decided on a local shift along one segment column present in ``holdout``,
    with at least :data:`MIN_LOCAL_ROWS` rows on both sides; otherwise None (judged on every row).
    """
    if training_path != "fine_tune" or drift_scope != "local":
        return None
    segments = [str(s).split("=", 1) for s in affected_segments if "=" in str(s)]
    columns = {column for column, _ in segments}
    if len(columns) != 1 or next(iter(columns)) not in holdout.columns:
        return None
    column = next(iter(columns))
    values = sorted(value for _, value in segments)
    # Segment values come as text ("col=value"): compare the column as text whatever its dtype.
    rows = holdout[column].astype(str).isin(values).to_numpy()
    if rows.sum() < MIN_LOCAL_ROWS or (~rows).sum() < MIN_LOCAL_ROWS:
        return None
    return LocalShift(rows, f"{column}={'|'.join(values)}")


def blocking_failures(results: Iterable[GateResult]) -> list[GateResult]:
    """The results that stop a model: failed gates of error severity (warnings never block)."""
    return [gate for gate in results if not gate.passed and gate.severity == "error"]


def recorded_blocking_failures(gate_results: Iterable[Mapping[str, Any]]) -> list[str]:
    """Names of the blocking failures among gate results as the registry records them (``GateResult.to_dict``)."""
    return [str(gate.get("name")) for gate in gate_results
            if not gate.get("passed") and gate.get("severity") == "error"]


def _run(name: str, gate: Callable[[], GateResult], guarded: bool) -> GateResult:
    """``gate()``; when ``guarded``, a gate that cannot be evaluated (ValueError) fails instead of raising."""
    if not guarded:
        return gate()
    try:
        return gate()
    except ValueError as error:
        return GateResult(name, False, "error", {}, {}, f"could not be evaluated: {error}")


def _rows(scores: np.ndarray | None, mask: np.ndarray) -> np.ndarray | None:
    return None if scores is None else scores[mask]


def candidate_gates(holdout: HoldoutScores, settings: GateSettings, *, training: TrainingRows | None = None,
                    local_shift: LocalShift | None = None, label_coverage: LabelCoverage | None = None,
                    guarded: bool = False) -> list[GateResult]:
    """Every gate of a candidate against production, in order: holdout, non-regression, fairness,
    leakage, calibration, selection bias.

    A local fine-tune (``local_shift``) must win where the shift is and must not lose elsewhere:
    judged on the whole holdout, a shift in a fifth of the traffic moves the overall metric too
    little. Otherwise the holdout gate judges every row and non-regression passes. Fairness needs
    ``holdout.groups``, leakage ``training`` with numeric columns, selection bias ``label_coverage``;
    each is left out without its input. ``guarded``: a gate that cannot be evaluated fails (the
    backtest) instead of raising (live, where the failing check blocks promotion).
    """
    y, cand, prod = holdout.labels, holdout.candidate, holdout.production
    if local_shift is None:
        gates = [_run("holdout", lambda: holdout_gate(
                     y, cand, prod, metric=settings.metric, margin=settings.margin, relative=settings.relative,
                     n_boot=settings.n_boot, seed=settings.seed), guarded),
                 GateResult("non_regression", True, "error", {}, {},
                            "not a local fine-tune: the holdout gate judged every row")]
    else:
        inside, where = local_shift.rows, local_shift.where
        gates = [_run("holdout", lambda: _prefixed(holdout_gate(
                     y[inside], cand[inside], _rows(prod, inside), metric=settings.metric, margin=settings.margin,
                     relative=settings.relative, n_boot=settings.n_boot, seed=settings.seed), f"on {where}"), guarded),
                 _run("non_regression", lambda: non_regression_gate(
                     y[~inside], cand[~inside], _rows(prod, ~inside), metric=settings.metric,
                     tolerance=settings.non_regression_tolerance, scope=f"rows outside {where}"), guarded)]
    gates.extend(_shared_gates(holdout, settings, guarded, training))
    if label_coverage is not None:
        gates.append(selection_bias_gate(label_coverage.labelled, label_coverage.production_scores))
    return gates


def online_chain_gates(holdout: HoldoutScores, settings: GateSettings, tolerance: float, scope: str,
                       guarded: bool = False) -> list[GateResult]:
    """The scheduled gates of an online chain: the newest version (``holdout.candidate``) against its
    anchor (``holdout.production``) may lose at most ``tolerance``, nor fairness or calibration.

    With fewer than two classes among the labels the chain cannot be judged yet, and passes.
    """
    if len(np.unique(holdout.labels)) < 2:
        return [GateResult("non_regression", True, "error", {"n": len(holdout.labels)}, {},
                           "too few labelled holdout rows to judge the online chain yet")]
    gates = [_run("non_regression", lambda: non_regression_gate(
        holdout.labels, holdout.candidate, holdout.production, metric=settings.metric, tolerance=tolerance,
        scope=scope), guarded)]
    return gates + _shared_gates(holdout, settings, guarded)


def _shared_gates(holdout: HoldoutScores, settings: GateSettings, guarded: bool,
                  training: TrainingRows | None = None) -> list[GateResult]:
    """Fairness, leakage (with ``training``) and calibration, as every line-up applies them."""
    y, cand, prod, groups = holdout.labels, holdout.candidate, holdout.production, holdout.groups
    gates = []
    if groups is not None:
        gates.append(_run("fairness", lambda: fairness_gate(
            y, cand, prod, groups, metric="auc", tolerance=settings.fairness_tolerance,
            max_gap_widening=settings.max_gap_widening, max_gap=settings.fairness_max_gap), guarded))
    if training is not None and training.columns:  # the leakage gate tests numeric features only
        gates.append(_run("leakage", lambda: leakage_gate(
            training.features, training.labels, max_single_feature_auc=settings.max_single_feature_auc,
            reference_auc=training.reference_auc, max_jump=settings.leakage_max_jump, columns=training.columns,
            batches=training.batches), guarded))
    gates.append(_run("calibration", lambda: calibration_gate(
        y, cand, prod, max_ece_increase=settings.max_ece_increase), guarded))
    return gates


def _prefixed(gate: GateResult, where: str) -> GateResult:
    return replace(gate, reason=f"{where}: {gate.reason}")
