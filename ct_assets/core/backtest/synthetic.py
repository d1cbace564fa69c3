"""The literature's concept-drift generators as backtest streams: SEA, rotating hyperplane, STAGGER, Agrawal.

Every generator draws ``n_batches * batch_size`` rows with one seeded numpy generator, labels each
row with the concept in force for it and cuts the rows into equal batches. Concepts change at
``change_points`` (batch indices, recorded in ``StreamSpec.change_points``):

* ``drift="abrupt"``: from the first row of batch ``c`` on, every row follows the next concept.
* ``drift="gradual"``: over the ``gradual_width`` batches starting at ``c``, each row follows the next
  concept with a probability rising linearly with its position, from about 0 at the first row of
  batch ``c`` to 1 at the last row of batch ``c + gradual_width - 1``: the mixing of two concepts that
  MOA's and river's ``ConceptDriftStream`` do (they use a sigmoid ramp; this is its linear form).
  The rotating hyperplane instead moves its weights row by row across the window (incremental
  drift, as in Hulten et al.).

Windows of consecutive changes may not overlap. ``noise`` is the probability that a row's label is
flipped after labelling (class noise). The features' distribution never changes: all four are pure
concept drift (P(y | x) changes, P(x) does not), so a drift test on the inputs alone sees nothing.

Example::

    stream = sea_stream(n_batches=20, change_points=(10,), seed=3)
    stream.batches[0].columns.tolist()   # ['f1', 'f2', 'f3', 'label']
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd

from ct_assets.core.backtest.stream import LABEL_COLUMN, Stream, StreamSpec

DRIFT_KINDS: tuple[str, ...] = ("abrupt", "gradual")
DEFAULT_CHANGE_POINTS: tuple[int, ...] = (10, 20, 30)


# ---------------------------------------------------------------------------------------------
# Shared layout: validation, where each row stands between concepts, batching
# ---------------------------------------------------------------------------------------------

def _check_int(name: str, value: object, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")
    return int(value)


def _check_probability(name: str, value: object, maximum: float = 1.0) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= float(value) <= maximum:
        raise ValueError(f"{name} must be a number within [0, {maximum}], got {value!r}")
    return float(value)


def _check_layout(n_batches: int, batch_size: int, change_points: Sequence[int], drift: str,
                  gradual_width: int, noise: float, seed: int) -> tuple[int, ...]:
    """Validate the arguments every generator shares; returns the change points as a tuple."""
    _check_int("seed", seed, 0)
    n_batches = _check_int("n_batches", n_batches, 2)
    _check_int("batch_size", batch_size, 1)
    if drift not in DRIFT_KINDS:
        raise ValueError(f"drift must be one of {DRIFT_KINDS}, got {drift!r}")
    _check_int("gradual_width", gradual_width, 1)
    # Class noise above 0.5 would invert the concept rather than blur it.
    _check_probability("noise", noise, maximum=0.5)
    points = tuple(change_points)
    if any(isinstance(p, bool) or not isinstance(p, (int, np.integer)) for p in points):
        raise ValueError(f"change_points must be ints, got {change_points!r}")
    points = tuple(int(p) for p in points)
    if list(points) != sorted(set(points)) or any(not 1 <= p < n_batches for p in points):
        raise ValueError(f"change_points must be increasing batch indices within [1, {n_batches - 1}], "
                         f"got {change_points!r}")
    if drift == "gradual":
        for before, after in itertools.pairwise(points):
            if before + gradual_width > after:
                raise ValueError(f"gradual_width={gradual_width}: the transition starting at batch {before} "
                                 f"would overlap the change at batch {after}")
    return points


def _phase(n_batches: int, batch_size: int, change_points: tuple[int, ...], drift: str,
           gradual_width: int) -> np.ndarray:
    """Per row, how many concept changes it has gone through (fractional inside a gradual window)."""
    row = np.arange(n_batches * batch_size, dtype=float)
    phase = np.zeros(row.shape)
    for point in change_points:
        start = point * batch_size
        if drift == "abrupt":
            phase += row >= start
        else:
            phase += np.clip((row - start + 1.0) / (gradual_width * batch_size), 0.0, 1.0)
    return phase


def _segment_per_row(phase: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The concept segment each row is drawn from: inside a transition, the next one with probability = progress."""
    completed = np.floor(phase)
    return (completed + (rng.random(phase.shape) < phase - completed)).astype(np.int64)


def _flip(labels: np.ndarray, noise: float, rng: np.random.Generator) -> np.ndarray:
    flipped = rng.random(labels.shape) < noise
    return np.where(flipped, 1 - labels, labels).astype(np.int64)


def _to_stream(spec: StreamSpec, frame: pd.DataFrame, n_batches: int, batch_size: int) -> Stream:
    batches = tuple(frame.iloc[i * batch_size:(i + 1) * batch_size].reset_index(drop=True)
                    for i in range(n_batches))
    return Stream(spec, batches)


def _drift_text(change_points: tuple[int, ...], drift: str, gradual_width: int) -> str:
    if drift == "gradual":
        return f"gradual over {gradual_width} batches from batches {change_points}"
    return f"abrupt at batches {change_points}"


def _sequence(name: str, values: Sequence[object], allowed: Sequence[object]) -> tuple:
    values = tuple(values)
    if not values or any(v not in allowed for v in values):
        raise ValueError(f"{name} must be a non-empty sequence of values from {tuple(allowed)}, got {values!r}")
    return values


# ---------------------------------------------------------------------------------------------
# SEA
# ---------------------------------------------------------------------------------------------

SEA_THRESHOLDS: tuple[float, ...] = (8.0, 9.0, 7.0, 9.5)


def sea_stream(n_batches: int = 40, batch_size: int = 1000, change_points: tuple[int, ...] = DEFAULT_CHANGE_POINTS,
               drift: str = "abrupt", gradual_width: int = 4, noise: float = 0.1, seed: int = 0,
               thresholds: Sequence[float] = SEA_THRESHOLDS) -> Stream:
    """SEA concepts (Street & Kim, "A streaming ensemble algorithm (SEA) for large-scale
    classification", KDD 2001, section 4.1).

    Three features ``f1, f2, f3`` uniform in [0, 10]; only ``f1`` and ``f2`` matter. ``label = 1`` when
    ``f1 + f2 <= theta``, with ``theta`` cycling through the four concepts 8, 9, 7, 9.5 (``thresholds``)
    at the change points; the paper adds 10 % class noise (``noise``).
    """
    points = _check_layout(n_batches, batch_size, change_points, drift, gradual_width, noise, seed)
    thresholds = tuple(float(t) for t in thresholds)
    if not thresholds or any(not 0.0 < t < 20.0 for t in thresholds):
        raise ValueError(f"thresholds must be a non-empty sequence of numbers within (0, 20), got {thresholds!r}")
    rng = np.random.default_rng(np.random.SeedSequence([seed, 1]))
    n = n_batches * batch_size
    features = rng.uniform(0.0, 10.0, size=(n, 3))
    segment = _segment_per_row(_phase(n_batches, batch_size, points, drift, gradual_width), rng)
    theta = np.asarray(thresholds)[segment % len(thresholds)]
    labels = _flip((features[:, 0] + features[:, 1] <= theta).astype(np.int64), noise, rng)
    frame = pd.DataFrame({"f1": features[:, 0], "f2": features[:, 1], "f3": features[:, 2], LABEL_COLUMN: labels})
    spec = StreamSpec(
        name="sea", numeric_features=("f1", "f2", "f3"), change_points=points,
        description=(f"SEA (Street & Kim 2001): label = f1 + f2 <= theta, theta cycling {thresholds}, "
                     f"{_drift_text(points, drift, gradual_width)}, {noise:.0%} label noise, seed {seed}"))
    return _to_stream(spec, frame, n_batches, batch_size)


# ---------------------------------------------------------------------------------------------
# Rotating hyperplane
# ---------------------------------------------------------------------------------------------

def hyperplane_stream(n_batches: int = 40, batch_size: int = 1000,
                      change_points: tuple[int, ...] = DEFAULT_CHANGE_POINTS, drift: str = "abrupt",
                      gradual_width: int = 4, noise: float = 0.05, seed: int = 0, n_features: int = 10,
                      n_drift_features: int = 2, magnitude: float = 0.1, sigma: float = 0.1) -> Stream:
    """Rotating hyperplane (Hulten, Spencer & Domingos, "Mining time-changing data streams", KDD 2001;
    parameters as in MOA's ``HyperplaneGenerator`` and river's ``synth.Hyperplane``).

    Features ``x0 .. x{d-1}`` uniform in [0, 1]; weights ``w`` uniform in [0, 1] (seeded);
    ``label = 1`` when ``sum_i w_i x_i >= 0.5 * sum_i w_i``, flipped with probability ``noise``
    (MOA's default 5 %). The first ``n_drift_features`` weights drift: at each change point each moves
    by ``magnitude`` per batch for ``gradual_width`` batches in its direction ``+-1``, which reverses
    first with probability ``sigma`` (Hulten's direction reversal). ``drift="gradual"`` makes that move
    row by row across the window (the hyperplane rotates continuously, MOA's per-example
    ``magChange = magnitude / batch_size``); ``drift="abrupt"`` applies the whole move at the change
    point, so both kinds reach the same hyperplanes and differ only in speed. With the defaults each
    drifting weight moves by 0.4 per change, which relabels about 8-10 % of the points.
    """
    points = _check_layout(n_batches, batch_size, change_points, drift, gradual_width, noise, seed)
    n_features = _check_int("n_features", n_features, 2)
    n_drift_features = _check_int("n_drift_features", n_drift_features, 1)
    if n_drift_features > n_features:
        raise ValueError(f"n_drift_features={n_drift_features} exceeds n_features={n_features}")
    if isinstance(magnitude, bool) or not isinstance(magnitude, (int, float)) or not (
            math.isfinite(magnitude) and magnitude >= 0):
        raise ValueError(f"magnitude must be a finite number >= 0, got {magnitude!r}")
    sigma = _check_probability("sigma", sigma)

    rng = np.random.default_rng(np.random.SeedSequence([seed, 2]))
    n = n_batches * batch_size
    features = rng.random((n, n_features))
    # One weight vector per concept segment: segment k is the hyperplane after k moves.
    concept_weights = [rng.random(n_features)]
    direction = np.ones(n_drift_features)
    for _ in points:
        direction = np.where(rng.random(n_drift_features) < sigma, -direction, direction)
        moved = concept_weights[-1].copy()
        moved[:n_drift_features] += direction * magnitude * gradual_width
        concept_weights.append(moved)
    concepts = np.asarray(concept_weights)
    phase = _phase(n_batches, batch_size, points, drift, gradual_width)
    completed = np.minimum(np.floor(phase).astype(np.int64), len(points))
    progress = (phase - completed)[:, None]
    following = np.minimum(completed + 1, len(points))
    weights = (1.0 - progress) * concepts[completed] + progress * concepts[following]
    labels = (np.einsum("ij,ij->i", features, weights) >= 0.5 * weights.sum(axis=1)).astype(np.int64)
    labels = _flip(labels, noise, rng)

    names = tuple(f"x{i}" for i in range(n_features))
    frame = pd.DataFrame(features, columns=list(names)).assign(**{LABEL_COLUMN: labels})
    spec = StreamSpec(
        name="hyperplane", numeric_features=names, change_points=points,
        description=(f"rotating hyperplane (Hulten et al. 2001): {n_features} features, {n_drift_features} "
                     f"drifting by {magnitude} per batch for {gradual_width} batches per change, "
                     f"{_drift_text(points, drift, gradual_width)}, {noise:.0%} label noise, seed {seed}"))
    return _to_stream(spec, frame, n_batches, batch_size)


# ---------------------------------------------------------------------------------------------
# STAGGER
# ---------------------------------------------------------------------------------------------

STAGGER_SIZES: tuple[str, ...] = ("small", "medium", "large")
STAGGER_COLORS: tuple[str, ...] = ("red", "green", "blue")
STAGGER_SHAPES: tuple[str, ...] = ("circle", "square", "triangle")
STAGGER_CONCEPTS: dict[int, str] = {
    1: "size == small and color == red",
    2: "color == green or shape == circle",
    3: "size == medium or size == large",
}


def _stagger_concept(concept: int, size: np.ndarray, color: np.ndarray, shape: np.ndarray) -> np.ndarray:
    if concept == 1:
        return (size == "small") & (color == "red")
    if concept == 2:
        return (color == "green") | (shape == "circle")
    return (size == "medium") | (size == "large")


def stagger_stream(n_batches: int = 40, batch_size: int = 1000,
                   change_points: tuple[int, ...] = DEFAULT_CHANGE_POINTS, drift: str = "abrupt",
                   gradual_width: int = 4, noise: float = 0.0, seed: int = 0,
                   concepts: Sequence[int] = (1, 2, 3)) -> Stream:
    """STAGGER concepts (Schlimmer & Granger, "Incremental learning from noisy data", Machine
    Learning 1(3), 1986; as in MOA's ``STAGGERGenerator``).

    Three categorical features, each uniform over three values: ``size`` (small, medium, large),
    ``color`` (red, green, blue), ``shape`` (circle, square, triangle). ``label = 1`` under concept
    1: size small and color red; 2: color green or shape circle; 3: size medium or large. The
    concepts follow ``concepts`` (cycled) across the change points; the original has no noise.
    """
    points = _check_layout(n_batches, batch_size, change_points, drift, gradual_width, noise, seed)
    concepts = _sequence("concepts", concepts, tuple(STAGGER_CONCEPTS))
    rng = np.random.default_rng(np.random.SeedSequence([seed, 3]))
    n = n_batches * batch_size
    size = np.asarray(STAGGER_SIZES, dtype=object)[rng.integers(0, 3, n)]
    color = np.asarray(STAGGER_COLORS, dtype=object)[rng.integers(0, 3, n)]
    shape = np.asarray(STAGGER_SHAPES, dtype=object)[rng.integers(0, 3, n)]
    concept_of_row = np.asarray(concepts)[
        _segment_per_row(_phase(n_batches, batch_size, points, drift, gradual_width), rng) % len(concepts)]
    labels = np.zeros(n, dtype=np.int64)
    for concept in set(concepts):
        rows = concept_of_row == concept
        labels[rows] = _stagger_concept(concept, size[rows], color[rows], shape[rows])
    labels = _flip(labels, noise, rng)
    frame = pd.DataFrame({"size": size, "color": color, "shape": shape, LABEL_COLUMN: labels})
    spec = StreamSpec(
        name="stagger", numeric_features=(), categorical_features=("size", "color", "shape"),
        segment_columns=("size", "color", "shape"), change_points=points,
        description=(f"STAGGER (Schlimmer & Granger 1986): concepts {concepts} cycling, "
                     f"{_drift_text(points, drift, gradual_width)}, {noise:.0%} label noise, seed {seed}"))
    return _to_stream(spec, frame, n_batches, batch_size)


# ---------------------------------------------------------------------------------------------
# Agrawal
# ---------------------------------------------------------------------------------------------

AGRAWAL_NUMERIC: tuple[str, ...] = ("salary", "commission", "age", "hvalue", "hyears", "loan")
AGRAWAL_CATEGORICAL: tuple[str, ...] = ("elevel", "car", "zipcode")
AGRAWAL_FUNCTIONS: tuple[int, ...] = tuple(range(1, 11))


def _between(values: np.ndarray, low: float, high: float) -> np.ndarray:
    return (low <= values) & (values <= high)


def _by_age(age: np.ndarray, young: np.ndarray, middle: np.ndarray, old: np.ndarray) -> np.ndarray:
    return np.where(age < 40, young, np.where(age < 60, middle, old))


def _agrawal_group_a(function: int, c: dict[str, np.ndarray]) -> np.ndarray:
    """Whether each row is in "Group A" under classification function ``function`` (1..10, paper p. 924)."""
    salary, commission, age, elevel = c["salary"], c["commission"], c["age"], c["elevel"]
    hvalue, hyears, loan = c["hvalue"], c["hyears"], c["loan"]
    if function == 1:
        return (age < 40) | (age >= 60)
    if function == 2:
        return _by_age(age, _between(salary, 50e3, 100e3), _between(salary, 75e3, 125e3),
                       _between(salary, 25e3, 75e3))
    if function == 3:
        return _by_age(age, np.isin(elevel, (0, 1)), np.isin(elevel, (1, 2, 3)), np.isin(elevel, (2, 3, 4)))
    if function == 4:
        return _by_age(
            age,
            np.where(np.isin(elevel, (0, 1)), _between(salary, 25e3, 75e3), _between(salary, 50e3, 100e3)),
            np.where(np.isin(elevel, (1, 2, 3)), _between(salary, 50e3, 100e3), _between(salary, 75e3, 125e3)),
            np.where(np.isin(elevel, (2, 3, 4)), _between(salary, 50e3, 100e3), _between(salary, 25e3, 75e3)))
    if function == 5:
        return _by_age(
            age,
            np.where(_between(salary, 50e3, 100e3), _between(loan, 100e3, 300e3), _between(loan, 200e3, 400e3)),
            np.where(_between(salary, 75e3, 125e3), _between(loan, 200e3, 400e3), _between(loan, 300e3, 500e3)),
            np.where(_between(salary, 25e3, 75e3), _between(loan, 300e3, 500e3), _between(loan, 100e3, 300e3)))
    total = salary + commission
    if function == 6:
        return _by_age(age, _between(total, 50e3, 100e3), _between(total, 75e3, 125e3), _between(total, 25e3, 75e3))
    if function == 7:
        return 2.0 * total / 3.0 - loan / 5.0 - 20e3 > 0
    if function == 8:
        return 2.0 * total / 3.0 - 5e3 * elevel - 20e3 > 0
    if function == 9:
        return 2.0 * total / 3.0 - 5e3 * elevel - loan / 5.0 - 10e3 > 0
    equity = np.where(hyears >= 20, hvalue * (hyears - 20.0) / 10.0, 0.0)
    return 2.0 * total / 3.0 - 5e3 * elevel + equity / 5.0 - 10e3 > 0


def _perturb(values: np.ndarray, spread: np.ndarray | float, low: np.ndarray | float, high: np.ndarray | float,
             fraction: float, rng: np.random.Generator) -> np.ndarray:
    """MOA's perturbation: add uniform noise of +-fraction * spread, clip to [low, high]."""
    return np.clip(values + spread * (2.0 * rng.random(values.shape) - 1.0) * fraction, low, high)


def agrawal_stream(n_batches: int = 40, batch_size: int = 1000,
                   change_points: tuple[int, ...] = DEFAULT_CHANGE_POINTS, drift: str = "abrupt",
                   gradual_width: int = 4, noise: float = 0.0, seed: int = 0,
                   functions: Sequence[int] = (1, 2, 4, 9), perturbation: float = 0.05) -> Stream:
    """Agrawal's loan-applicant generator (Agrawal, Imielinski & Swami, "Database mining: a
    performance perspective", IEEE TKDE 5(6), 1993; as in MOA's ``AgrawalGenerator``).

    Nine attributes: ``salary`` U[20k, 150k]; ``commission`` 0 if salary >= 75k else U[10k, 75k];
    ``age`` integer U[20, 80]; ``elevel`` education level 0..4; ``car`` make 1..20; ``zipcode`` 1..9;
    ``hvalue`` house value U[0.5, 1.5] * (10 - zipcode) * 100k; ``hyears`` integer U[1, 30];
    ``loan`` U[0, 500k]. ``elevel``, ``car`` and ``zipcode`` are categorical strings (``level0``,
    ``car1``, ``zipcode1`` as in MOA); ``zipcode`` is the segment column (it shifts house values, and
    every function change hits all zipcodes: a global shift). ``label = 1`` when the row is in the
    paper's "Group A" under the classification function in force (1..10; MOA calls Group A class 0);
    the functions follow ``functions`` (cycled) across the change points. After labelling, numeric
    values get MOA's perturbation (uniform +-``perturbation`` of each attribute's range, clipped);
    unlike MOA, a house value is clipped to its own zipcode's range (MOA clips every house value at
    135k, which erases the zipcode effect). ``noise`` flips labels on top.
    """
    points = _check_layout(n_batches, batch_size, change_points, drift, gradual_width, noise, seed)
    functions = _sequence("functions", functions, AGRAWAL_FUNCTIONS)
    perturbation = _check_probability("perturbation", perturbation)
    rng = np.random.default_rng(np.random.SeedSequence([seed, 4]))
    n = n_batches * batch_size
    salary = 20e3 + 130e3 * rng.random(n)
    commission = np.where(salary >= 75e3, 0.0, 10e3 + 65e3 * rng.random(n))
    age = (20 + rng.integers(0, 61, n)).astype(float)
    elevel = rng.integers(0, 5, n)
    car = rng.integers(0, 20, n)
    zipcode = rng.integers(0, 9, n)
    house_scale = (9.0 - zipcode) * 100e3
    hvalue = house_scale * (0.5 + rng.random(n))
    hyears = (1 + rng.integers(0, 30, n)).astype(float)
    loan = 500e3 * rng.random(n)
    columns = {"salary": salary, "commission": commission, "age": age, "elevel": elevel,
               "hvalue": hvalue, "hyears": hyears, "loan": loan}

    function_of_row = np.asarray(functions)[
        _segment_per_row(_phase(n_batches, batch_size, points, drift, gradual_width), rng) % len(functions)]
    labels = np.zeros(n, dtype=np.int64)
    for function in set(functions):
        rows = function_of_row == function
        labels[rows] = _agrawal_group_a(function, {k: v[rows] for k, v in columns.items()})
    labels = _flip(labels, noise, rng)

    if perturbation > 0:
        salary = _perturb(salary, 130e3, 20e3, 150e3, perturbation, rng)
        commission = np.where(commission > 0, _perturb(commission, 65e3, 10e3, 75e3, perturbation, rng), 0.0)
        age = np.round(_perturb(age, 60.0, 20.0, 80.0, perturbation, rng))
        hvalue = _perturb(hvalue, house_scale, 0.5 * house_scale, 1.5 * house_scale, perturbation, rng)
        hyears = np.round(_perturb(hyears, 29.0, 1.0, 30.0, perturbation, rng))
        loan = _perturb(loan, 500e3, 0.0, 500e3, perturbation, rng)

    frame = pd.DataFrame({
        "salary": salary, "commission": commission, "age": age, "hvalue": hvalue, "hyears": hyears, "loan": loan,
        "elevel": np.char.add("level", elevel.astype(str)).astype(object),
        "car": np.char.add("car", (car + 1).astype(str)).astype(object),
        "zipcode": np.char.add("zipcode", (zipcode + 1).astype(str)).astype(object),
        LABEL_COLUMN: labels,
    })
    spec = StreamSpec(
        name="agrawal", numeric_features=AGRAWAL_NUMERIC, categorical_features=AGRAWAL_CATEGORICAL,
        segment_columns=("zipcode",), change_points=points,
        description=(f"Agrawal (Agrawal et al. 1993): functions {functions} cycling, "
                     f"{_drift_text(points, drift, gradual_width)}, perturbation {perturbation}, "
                     f"{noise:.0%} label noise, seed {seed}"))
    return _to_stream(spec, frame, n_batches, batch_size)


SYNTHETIC_STREAMS: dict[str, Callable[..., Stream]] = {
    "sea": sea_stream,
    "hyperplane": hyperplane_stream,
    "stagger": stagger_stream,
    "agrawal": agrawal_stream,
}
