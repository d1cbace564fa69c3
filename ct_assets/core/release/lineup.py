"""Which gates judge a model, on which rows: the one line-up live evaluation, online mode and the backtest share.

The callers only load rows and score them; these pure functions choose the rows, the gates and their
settings. A candidate (retrain or fine-tune) is judged on the newest regime's holdout rows
(:func:`newest_holdout_rows`: since the detected shift started, else the newest few periods) and on
the fixed long-term holdout set (``splits.long_term_holdout_mask``, capped by :func:`spread_evenly`),
facing :func:`candidate_gates`; an online chain, every few updates, faces :func:`online_chain_gates`
against its anchor. :func:`blocking_failures` says which results stop a model.

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
from typing import TYPE_CHECKING, Any, Callable, Iterable, Mapping

import numpy as np

from ct_assets.core.release.gates import (
    GateResult,
    calibration_gate,
    fairness_gate,
    leakage_gate,
    selection_bias_gate,
)
from ct_assets.core.release.holdout_gates import (
    holdout_gate,
    non_inferiority_gate,
    non_regression_gate,
    resolvable_margin,
)

if TYPE_CHECKING:
    import pandas as pd

# Holdout rows needed on each side of a local shift to judge a local fine-tune there.
MIN_LOCAL_ROWS = 100
HOLDOUT_MODES: tuple[str, ...] = ("non_inferiority", "superiority")


@dataclass(frozen=True)
class GateSettings:
    """The thresholds of every gate (live from ``CTSettings.gate_settings``, in a replay ``BacktestConfig.gates``)."""

    metric: str = "auc"
    # "non_inferiority": not worse than production by more than the holdout can resolve (the default:
    # a candidate must not cost accuracy, and every update it lets through brings fresher data);
    # "superiority": at least ``margin`` better (relative when ``relative``), for teams that want it.
    holdout_mode: str = "non_inferiority"
    margin: float = 0.01  # superiority only; the seed's example: at least 1 % better
    relative: bool = True
    # Non-inferiority margin, in metric units: what the rows resolve at this power, within [floor, cap].
    non_inferiority_floor: float = 0.002
    non_inferiority_max_margin: float = 0.05
    non_inferiority_power: float = 0.8
    # The newest regime's rows: since the shift start, else the newest periods; widened back to at least
    # this many rows with both classes.
    recent_holdout_periods: int = 3
    min_holdout_rows: int = 200
    # The fixed long-term holdout set: the candidate may lose at most this much there (the margin floor).
    long_term_tolerance: float = 0.01
    long_term_max_rows: int = 5000
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

    def __post_init__(self) -> None:
        if self.holdout_mode not in HOLDOUT_MODES:
            raise ValueError(f"holdout_mode must be one of {HOLDOUT_MODES}, got {self.holdout_mode!r}")
        if self.recent_holdout_periods < 1 or self.min_holdout_rows < 1 or self.long_term_max_rows < 1:
            raise ValueError("recent_holdout_periods, min_holdout_rows and long_term_max_rows must be >= 1")


@dataclass(frozen=True)
class HoldoutScores:
    """Labels of holdout rows and both models' scores on them; ``production`` None without one.

    ``groups``: each row's protected group (None: the data has no protected attribute, no fairness gate).
    ``rows``: which rows these are, for the reasons (e.g. "holdout rows of batches 12..14").
    """

    labels: np.ndarray
    candidate: np.ndarray
    production: np.ndarray | None
    groups: np.ndarray | None
    rows: str = "holdout rows"


@dataclass(frozen=True)
class NewestRows:
    """The newest regime's holdout rows (``rows``, a mask), from period ``first`` to ``last``, and why."""

    rows: np.ndarray
    first: object
    last: object
    since_shift: bool
    why: str

    def describe(self, periods: str) -> str:
        """E.g. ``describe("batches")``: "holdout rows of batches 8..9 (since the shift started at 8)"."""
        return f"holdout rows of {periods} {self.first}..{self.last} ({self.why})"


def regime_start(decided_start: object | None, monitored_start: object | None) -> object | None:
    """Where the newest regime starts for the gates: where the decision behind the candidate put it (the
    start of the serving model's run of excess errors, or of the detected shift), else where the
    monitoring signals put it. One rule, so the gates judge the regime the candidate was trained for.

    >>> regime_start(12, 9), regime_start(None, 9), regime_start(None, None)
    (12, 9, None)
    """
    return decided_start if decided_start is not None else monitored_start


def serving_degraded(concept_drift_detected: bool, avoidable_errors: float | None) -> bool:
    """Whether the serving model got worse on fresh labels: concept drift, or errors beyond its own
    reference and their noise (the trigger's avoidable errors). A leaked feature leaves the model that
    never saw it as good as before, a real change of concept degrades it.

    >>> serving_degraded(False, 12.5), serving_degraded(False, 0.0), serving_degraded(False, None)
    (True, False, False)
    """
    return concept_drift_detected or (avoidable_errors is not None and avoidable_errors > 0)


def newest_holdout_rows(periods: np.ndarray, labels: np.ndarray, shift_start: object | None,
                        settings: GateSettings) -> NewestRows:
    """The holdout rows a candidate is judged on: those of the newest regime.

    ``periods`` is each row's day or batch (sortable), ``shift_start`` the first period of the detected
    shift (None: no ongoing shift). The rows are those from ``shift_start`` on, else of the newest
    ``recent_holdout_periods`` periods: the old regime's rows, which the serving model knows, must not
    outvote the new one's. Too few rows (or one class) to judge: widened back a period at a time to at
    least ``min_holdout_rows`` rows with both classes, as far as the rows go.

    >>> batches, y = np.repeat(np.arange(10), 50), np.tile([0, 1], 250)
    >>> settings = GateSettings(min_holdout_rows=100)
    >>> newest_holdout_rows(batches, y, 8, settings).describe("batches")
    'holdout rows of batches 8..9 (since the shift started at 8)'
    >>> newest_holdout_rows(batches, y, 9, settings).why
    'since the shift started at 9, widened back to 8 to reach 100 rows with both classes'
    >>> newest_holdout_rows(batches, y, None, settings).describe("batches")
    'holdout rows of batches 7..9 (the newest 3 periods: no shift detected)'
    """
    values = np.asarray(periods)
    if len(values) == 0:
        raise ValueError("no holdout rows to choose the newest regime from")
    distinct = sorted(set(values.tolist()))
    since_shift = shift_start is not None and any(v >= shift_start for v in distinct)
    if since_shift:
        start = distinct.index(min(v for v in distinct if v >= shift_start))
        why = f"since the shift started at {shift_start}"
    else:
        start = max(0, len(distinct) - settings.recent_holdout_periods)
        why = f"the newest {len(distinct) - start} periods: no shift detected"
    chosen = start
    y = np.asarray(labels)

    def enough(first: int) -> bool:
        rows = values >= distinct[first]
        return int(rows.sum()) >= settings.min_holdout_rows and len(np.unique(y[rows])) > 1

    while chosen > 0 and not enough(chosen):
        chosen -= 1
    if chosen < start:
        why += f", widened back to {distinct[chosen]} to reach {settings.min_holdout_rows} rows with both classes"
    return NewestRows(values >= distinct[chosen], distinct[chosen], distinct[-1], since_shift, why)


def spread_evenly(n_rows: int, max_rows: int) -> np.ndarray:
    """Indices of at most ``max_rows`` of ``n_rows`` time-ordered rows, evenly spaced, so a capped
    long-term holdout still spans the whole history.

    >>> spread_evenly(10, 4).tolist(), spread_evenly(3, 4).tolist()
    ([0, 3, 6, 9], [0, 1, 2])
    """
    if n_rows <= max_rows:
        return np.arange(n_rows)
    return np.unique(np.linspace(0, n_rows - 1, max_rows).round().astype(np.int64))


@dataclass(frozen=True)
class TrainingRows:
    """The candidate's training rows, for the leakage gate: ``batches`` (e.g. days) and the numeric
    ``columns`` to test, with the single-feature AUCs the production model's own leakage gate measured,
    the features the drift report behind the decision found shifted (None: no report) and whether that
    decision saw concept drift."""

    features: pd.DataFrame
    labels: np.ndarray
    batches: np.ndarray
    columns: tuple[str, ...]
    reference_auc: Mapping[str, float] | None
    shifted_features: tuple[str, ...] | None = None
    concept_drift: bool = False


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
                    long_term: HoldoutScores | None = None, shift_detected: bool = False,
                    population: HoldoutScores | None = None, guarded: bool = False) -> list[GateResult]:
    """Every gate of a candidate against production, in order: holdout, non-regression, long-term
    holdout, fairness, leakage, calibration, selection bias.

    ``holdout`` holds the newest regime's rows (:func:`newest_holdout_rows`), judged by the
    ``holdout_mode`` test. A local fine-tune (``local_shift``) must hold up where the shift is and
    must not lose elsewhere: judged on the whole holdout, a shift in a fifth of the traffic moves the
    overall metric too little. Otherwise the holdout gate judges every row and non-regression passes.
    ``long_term`` (the fixed long-term holdout set) may not regress beyond ``long_term_tolerance``;
    while a detected shift is being adapted to (``shift_detected``) the old regime may no longer
    hold, so there it warns instead of blocking. Fairness is a property of the population the model
    serves: it is judged on ``population`` (the window's whole holdout, which has the rows to estimate a
    between-group gap), else on ``holdout``; calibration on the newest regime, which is what the model
    will serve. Fairness needs groups, leakage
    ``training`` with numeric columns, selection bias ``label_coverage``; each is left out without
    its input. ``guarded``: a gate that cannot be evaluated fails (the backtest) instead of raising
    (live, where the failing check blocks promotion).
    """
    y, cand, prod = holdout.labels, holdout.candidate, holdout.production
    if local_shift is None:
        gates = [_run("holdout", lambda: _holdout_test(y, cand, prod, settings, holdout.rows), guarded),
                 GateResult("non_regression", True, "error", {}, {},
                            "not a local fine-tune: the holdout gate judged every row")]
    else:
        inside, where = local_shift.rows, local_shift.where
        gates = [_run("holdout", lambda: _prefixed(_holdout_test(
                     y[inside], cand[inside], _rows(prod, inside), settings, holdout.rows), f"on {where}"), guarded),
                 _run("non_regression", lambda: non_regression_gate(
                     y[~inside], cand[~inside], _rows(prod, ~inside), metric=settings.metric,
                     tolerance=settings.non_regression_tolerance, scope=f"rows outside {where}"), guarded)]
    if long_term is not None:
        gates.append(_run("long_term_holdout", lambda: _long_term_test(long_term, settings, shift_detected), guarded))
    gates.extend(_shared_gates(holdout, settings, guarded, training, fairness_rows=population))
    if label_coverage is not None:
        gates.append(selection_bias_gate(label_coverage.labelled, label_coverage.production_scores))
    return gates


def _holdout_test(y: np.ndarray, cand: np.ndarray, prod: np.ndarray | None, settings: GateSettings,
                  rows: str) -> GateResult:
    """The holdout gate of ``settings.holdout_mode`` on these rows."""
    if settings.holdout_mode == "superiority":
        return _prefixed(holdout_gate(y, cand, prod, metric=settings.metric, margin=settings.margin,
                                      relative=settings.relative, n_boot=settings.n_boot, seed=settings.seed),
                         f"on {len(y)} {rows}")
    return non_inferiority_gate(y, cand, prod, metric=settings.metric, margin_floor=settings.non_inferiority_floor,
                                max_margin=settings.non_inferiority_max_margin, power=settings.non_inferiority_power,
                                n_boot=settings.n_boot, seed=settings.seed, rows=rows)


def _long_term_test(long_term: HoldoutScores, settings: GateSettings, shift_detected: bool) -> GateResult:
    if len(np.unique(long_term.labels)) < 2:
        return GateResult("long_term_holdout", True, "error", {"n": len(long_term.labels)}, {},
                          "too few long-term holdout rows with both classes to judge yet")
    gate = non_inferiority_gate(
        long_term.labels, long_term.candidate, long_term.production, metric=settings.metric,
        margin_floor=settings.long_term_tolerance,
        max_margin=max(settings.long_term_tolerance, settings.non_inferiority_max_margin),
        power=settings.non_inferiority_power, n_boot=settings.n_boot, seed=settings.seed,
        severity="warning" if shift_detected else "error", name="long_term_holdout", rows=long_term.rows)
    if shift_detected and not gate.passed:
        return replace(gate, reason=f"{gate.reason}; the newest rows are a detected shift, which the old "
                                    "regime may no longer describe: reported, not blocking")
    capped = gate.metrics.get("margin", 0.0) < resolvable_margin(
        gate.metrics.get("standard_error", 0.0), confidence=0.95, power=settings.non_inferiority_power)
    if capped and not gate.passed:
        # A guard, not a test of the candidate: rows too few to resolve even the largest margin judge noise.
        return replace(gate, severity="warning",
                       reason=f"{gate.reason}; too few long-term rows to resolve the margin: reported, not blocking")
    return gate


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
                  training: TrainingRows | None = None,
                  fairness_rows: HoldoutScores | None = None) -> list[GateResult]:
    """Fairness (on ``fairness_rows``, else ``holdout``), leakage (with ``training``) and calibration, as
    every line-up applies them."""
    y, cand, prod = holdout.labels, holdout.candidate, holdout.production
    population = fairness_rows or holdout
    gates = []
    if population.groups is not None:
        gates.append(_run("fairness", lambda: fairness_gate(
            population.labels, population.candidate, population.production, population.groups, metric="auc",
            tolerance=settings.fairness_tolerance,
            max_gap_widening=settings.max_gap_widening, max_gap=settings.fairness_max_gap), guarded))
    if training is not None and training.columns:  # the leakage gate tests numeric features only
        gates.append(_run("leakage", lambda: leakage_gate(
            training.features, training.labels, max_single_feature_auc=settings.max_single_feature_auc,
            reference_auc=training.reference_auc, max_jump=settings.leakage_max_jump, columns=training.columns,
            batches=training.batches, shifted_features=training.shifted_features,
            concept_drift=training.concept_drift), guarded))
    gates.append(_run("calibration", lambda: calibration_gate(
        y, cand, prod, max_ece_increase=settings.max_ece_increase), guarded))
    return gates


def _prefixed(gate: GateResult, where: str) -> GateResult:
    return replace(gate, reason=f"{where}: {gate.reason}")
