"""Ground truth: the fraud probability of an order in the world of one day (its regime).

``P(is_fraud = 1 | x) = sigmoid(logit(x))`` with, in the base regime (about 10 % fraud)::

    logit = -4.1 - 0.55 (log1p(account_age_days) - 6) + 2.0 discount + 0.9 min(prior_chargebacks, 3)
            + 0.35 (log(price) - 4.5) + 0.12 (min(quantity, 10) - 1) + 0.9 [hour < 6]
            + channel effect (web +0.25, ios -0.25, android 0) + category effect
            + query-term effect (e.g. game_console +0.6, sneakers +0.5, pillow -0.3)
            - 0.55 (motion - 50) / 20 + 0.45 (pressure - 30) / 12 - 0.45 (log(latency) - log 120) / 0.5

where the sensor terms use the *physical* readings (the observed readings with any hardware
change undone). The latent bot-likeness ``z`` (:mod:`ct_assets.simulation.generation`) acts on
fraud only through these observed features, so the logistic model above is the exact
``P(y | x)``: ``generation.true_fraud_probability`` returns it for any day (an oracle baseline),
``generation.base_regime_probability`` the day-0 world's version (a model that never learned
anything new).

:func:`regime_for_day` composes the scenario events active on a day into that day's
:class:`Regime`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from ct_assets.core.data import schema
from ct_assets.simulation.config import SimulatorConfig, check_day_index
from ct_assets.simulation.scenarios import active_events


@dataclass(frozen=True)
class FraudCoefficients:
    """Weights of the ground-truth logit (see the module docstring for the feature transforms)."""

    intercept: float
    age: float
    discount: float
    chargebacks: float
    price: float
    quantity: float
    night: float
    motion: float
    pressure: float
    latency: float
    channel: Mapping[str, float]
    category: Mapping[str, float]
    term: Mapping[str, float]

    def blend(self, other: FraudCoefficients, weight: float) -> FraudCoefficients:
        """``(1 - weight) * self + weight * other``, term by term."""
        def mix(a: Mapping[str, float], b: Mapping[str, float]) -> dict[str, float]:
            return {k: (1 - weight) * a.get(k, 0.0) + weight * b.get(k, 0.0) for k in {*a, *b}}
        scalars = {name: (1 - weight) * getattr(self, name) + weight * getattr(other, name)
                   for name in _SCALAR_WEIGHTS + ("intercept",)}
        return FraudCoefficients(**scalars, channel=mix(self.channel, other.channel),
                                 category=mix(self.category, other.category), term=mix(self.term, other.term))


_SCALAR_WEIGHTS = ("age", "discount", "chargebacks", "price", "quantity", "night", "motion", "pressure", "latency")

# Intercept chosen so the base world's fraud rate is about 10 %.
BASE_COEFFICIENTS = FraudCoefficients(
    intercept=-4.1, age=-0.55, discount=2.0, chargebacks=0.9, price=0.35, quantity=0.12, night=0.9,
    motion=-0.55, pressure=0.45, latency=-0.45,
    channel={"web": 0.25, "ios": -0.25, "android": 0.0},
    category={"electronics": 0.45, "fashion": 0.15, "home": -0.35, "beauty": -0.1, "sports": -0.25},
    term={"game_console": 0.6, "smartwatch": 0.4, "laptop": 0.3, "phone_case": -0.3, "sneakers": 0.5,
          "handbag": 0.35, "perfume": 0.3, "pillow": -0.3, "protein": -0.2, "yoga_mat": -0.2},
)
# market_shift's world: fraud on aged stolen accounts, in daytime, via mobile apps, on home goods.
MARKET_SHIFT_COEFFICIENTS = FraudCoefficients(
    intercept=-2.8, age=0.35, discount=0.2, chargebacks=0.3, price=0.7, quantity=0.35, night=-0.4,
    motion=0.3, pressure=-0.2, latency=0.3,
    channel={"web": -0.4, "ios": 0.3, "android": 0.6},
    category={"electronics": -0.3, "fashion": 0.0, "home": 0.7, "beauty": 0.35, "sports": -0.1},
    term={"vacuum": 0.6, "coffee_maker": 0.5, "kettle": 0.4, "face_cream": 0.3, "game_console": -0.3,
          "sneakers": -0.2},
)

# Sensor hardware change at strength 1: observed = scale * physical + shift.
HARDWARE_CHANGE: dict[str, tuple[float, float]] = {
    "sensor_motion": (1.8, 40.0), "sensor_pressure": (0.5, -10.0),
    "sensor_latency_ms": (1.6, 25.0), "sensor_signal": (0.8, 15.0),
}


@dataclass(frozen=True)
class LocalConcept:
    """Inside the slice ``column == value`` some weights are replaced and an offset is added."""

    column: str
    value: str
    weights: Mapping[str, float]
    offset: float


@dataclass(frozen=True)
class Regime:
    """The world of one day: ground truth, covariate changes, label process and pipeline bugs."""

    coefficients: FraudCoefficients
    local_concepts: tuple[LocalConcept, ...]
    promotions: tuple[Mapping[str, object], ...]
    slang: tuple[Mapping[str, object], ...]
    sensor_transform: Mapping[str, tuple[float, float]]
    group_shifts: tuple[tuple[str, float], ...]
    label_coverage: float
    label_delay_days: int
    leakage: bool
    feedback_loop: bool
    scenarios: tuple[str, ...]


def regime_for_day(config: SimulatorConfig, day_index: int) -> Regime:
    """Compose the events of ``config.timeline`` active on ``day_index`` into that day's world."""
    check_day_index(day_index)
    coefficients = BASE_COEFFICIENTS
    concepts: list[LocalConcept] = []
    promotions: list[Mapping[str, object]] = []
    slang: list[Mapping[str, object]] = []
    transform = {column: (1.0, 0.0) for column in schema.SENSOR_COLUMNS}
    group_shifts: list[tuple[str, float]] = []
    coverage, delay = config.label_coverage, config.label_delay_days
    slang_effects: dict[str, float] = {}
    leakage = feedback = False
    events = active_events(config.timeline, day_index)
    for event in events:
        s = event.settings
        if event.name == "regional_promotion":
            promotions.append(s)
            concepts.append(LocalConcept("region", str(s["region"]), {"discount": float(s["discount_effect"])},
                                         float(s["fraud_offset"])))
        elif event.name == "new_slang":
            slang.append(s)
            slang_effects.update({term: float(s["term_effect"]) for term in s["terms"]})  # type: ignore[attr-defined]
        elif event.name == "sensor_hardware_change":
            w = float(s["strength"])
            for column, (scale, shift) in HARDWARE_CHANGE.items():
                old_scale, old_shift = transform[column]
                new_scale, new_shift = 1 + w * (scale - 1), w * shift
                transform[column] = (new_scale * old_scale, new_scale * old_shift + new_shift)
        elif event.name == "market_shift":
            coefficients = coefficients.blend(MARKET_SHIFT_COEFFICIENTS, float(s["strength"]))
        elif event.name in ("label_scarcity", "complaints"):
            coverage, delay = min(coverage, float(s["coverage"])), max(delay, int(s["delay_days"]))
            if event.name == "complaints":
                w = float(s["strength"])
                concepts.append(LocalConcept(str(s["slice_column"]), str(s["slice_value"]), {
                    "age": (1 - w) * BASE_COEFFICIENTS.age + w * 0.8,
                    "chargebacks": (1 - w) * BASE_COEFFICIENTS.chargebacks}, 1.3 * w))
        elif event.name == "group_shift":
            w = float(s["strength"])
            group_shifts.append((str(s["group"]), w))
            concepts.append(LocalConcept(schema.GROUP_COLUMN, str(s["group"]), {
                "age": (1 - w) * BASE_COEFFICIENTS.age, "night": (1 - w) * BASE_COEFFICIENTS.night,
                "pressure": (1 - w) * BASE_COEFFICIENTS.pressure}, 0.9 * w))
        elif event.name == "leakage_bug":
            leakage = True
        elif event.name == "feedback_loop":
            feedback = True
    # New terms keep their own effect whatever happens to the rest of the weights.
    coefficients = replace(coefficients, term={**coefficients.term, **slang_effects})
    return Regime(coefficients, tuple(concepts), tuple(promotions), tuple(slang), transform,
                  tuple(group_shifts), coverage, delay, leakage, feedback, tuple(e.name for e in events))


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _lookup(values: pd.Series, table: Mapping[str, float]) -> np.ndarray:
    """``table[value]`` per row, 0 for values the table does not know."""
    codes, uniques = pd.factorize(values)
    effects = np.array([table.get(value, 0.0) for value in uniques] + [0.0])
    return effects[codes]  # code -1 (missing) picks the trailing 0


def _hours(timestamps: pd.Series) -> np.ndarray:
    if not pd.api.types.is_datetime64_any_dtype(timestamps):
        timestamps = pd.to_datetime(timestamps)
    return timestamps.dt.hour.to_numpy()


def probability_under(events: pd.DataFrame, regime: Regime) -> np.ndarray:
    """P(is_fraud | events) in ``regime``, computed from the observed columns only."""
    missing = [c for c in schema.EVENT_COLUMNS if c not in events.columns]
    if missing:
        raise ValueError(f"events lack columns {missing}")
    n = len(events)
    physical = {}
    for column in schema.SENSOR_COLUMNS:
        scale, shift = regime.sensor_transform[column]
        physical[column] = (events[column].to_numpy(dtype=float) - shift) / scale
    terms = {
        "age": np.log1p(events["account_age_days"].to_numpy(dtype=float)) - 6.0,
        "discount": events["discount"].to_numpy(dtype=float),
        "chargebacks": np.minimum(events["prior_chargebacks"].to_numpy(dtype=float), 3.0),
        "price": np.log(events["price"].to_numpy(dtype=float)) - 4.5,
        "quantity": np.minimum(events["quantity"].to_numpy(dtype=float), 10.0) - 1.0,
        "night": (_hours(events[schema.TIME_COLUMN]) < 6).astype(float),
        "motion": (physical["sensor_motion"] - 50.0) / 20.0,
        "pressure": (physical["sensor_pressure"] - 30.0) / 12.0,
        "latency": (np.log(np.maximum(physical["sensor_latency_ms"], 1e-3)) - math.log(120.0)) / 0.5,
    }
    c = regime.coefficients
    weights = {name: np.full(n, getattr(c, name)) for name in _SCALAR_WEIGHTS}
    logit = np.full(n, c.intercept)
    for concept in regime.local_concepts:
        inside = (events[concept.column] == concept.value).to_numpy()
        for name, weight in concept.weights.items():
            weights[name][inside] = weight
        logit[inside] += concept.offset
    for name, values in terms.items():
        logit += weights[name] * values
    logit += _lookup(events["channel"], c.channel) + _lookup(events["category"], c.category)
    logit += _lookup(events["query_term"], c.term)
    return sigmoid(logit)
