"""Scenario simulator: a seeded stream of online-shop orders with delayed fraud-chargeback labels.

Domain
------
Each row is one order placed in an online shop (columns exactly as in :mod:`ct_assets.core.data.schema`).
The label ``is_fraud`` says whether the order later ended in a fraud chargeback; like a real
chargeback system, labels arrive *later* (``label_delay_days``) and only for a share of orders
(``label_coverage``). One batch is generated per simulated day ``d``: its date is
``start_date + d days``, its ``event_id`` is ``d * 1_000_000 + row`` (rows in time order, so ids
are unique across days), its ``event_ts`` lie inside that date.

How an order is drawn (base world)
----------------------------------
* ``protected_group``: ``group_a`` 70 % / ``group_b`` 30 %. It is never a model input, but it is
  mildly correlated with features: ``group_b`` customers have younger accounts, cheaper baskets,
  use Android more and live more in ``south``/``east``.
* A latent *bot-likeness* ``z ~ N(0, 1)`` per order (never written) shapes the order: bot-like
  sessions come from emulators or scripts (little device motion, flat high touch pressure, low
  data-centre latency), favour the web channel and night hours, use young accounts, larger
  quantities and discounts, and have more prior chargebacks.
* ``category`` (electronics 28 %, fashion 24 %, home 18 %, beauty 14 %, sports 16 %), then a
  ``query_term`` uniformly from that family's vocabulary (``schema.QUERY_TERMS``).
* ``price`` log-normal around a category median; ``discount`` zero for most orders, else
  ``0.05 + 0.6 * Beta(2, 6)``; ``quantity`` ``1 + Poisson``; ``account_age_days`` log-normal;
  ``prior_chargebacks`` Poisson with a rate rising with ``z``.
* Sensors: ``sensor_motion``, ``sensor_pressure`` and ``sensor_latency_ms`` depend on ``z`` plus
  noise; ``sensor_signal`` (radio strength, dBm-like) is a nuisance reading with no fraud signal.
* ``event_ts``: a diurnal profile (evening peak); bot-like sessions follow a night profile.

Every value lies inside ``schema.NUMERIC_COLUMNS``' ranges (values are clipped as a last resort,
which with the default parameters practically never binds).

Ground truth
------------
``P(is_fraud = 1 | x) = sigmoid(logit(x))`` with, in the base regime (about 10 % fraud)::

    logit = -4.1 - 0.55 (log1p(account_age_days) - 6) + 2.0 discount + 0.9 min(prior_chargebacks, 3)
            + 0.35 (log(price) - 4.5) + 0.12 (min(quantity, 10) - 1) + 0.9 [hour < 6]
            + channel effect (web +0.25, ios -0.25, android 0) + category effect
            + query-term effect (e.g. game_console +0.6, sneakers +0.5, pillow -0.3)
            - 0.55 (motion - 50) / 20 + 0.45 (pressure - 30) / 12 - 0.45 (log(latency) - log 120) / 0.5

where the sensor terms use the *physical* readings (the observed readings with any hardware
change undone). The latent ``z`` acts on fraud only through these observed features, so the
logistic model above is the exact ``P(y | x)``: :func:`true_fraud_probability` returns it for any
day (an oracle baseline), :func:`base_regime_probability` returns the day-0 world's version (a
model that never learned anything new).

Scenarios and timelines
-----------------------
A timeline is a tuple of :class:`ScenarioEvent` ("from day D, event E"), usually parsed from a
spec such as ``"stable@0,regional_promotion@5:region=west,sensor_hardware_change@12"``; an event
may end with ``:until=D``. Events active on the same day compose: covariate changes and local
concepts stack, hardware changes chain, label coverage is the smallest and delay the largest
asked for. Figures below are for the stale day-0 oracle at the default seed.

``stable``
    Nothing changes (oracle AUC about 0.89, fraud rate about 10 %).
``regional_promotion`` (``region=south``)
    Local: in that region 90 % of orders get a discount around 45 %, and discounts there stop
    signalling fraud (discount weight 2.0 -> 0.3, region offset +0.25): bargain hunters, not
    fraudsters. The stale model blocks many good promotion orders.
``new_slang`` (``family=fashion``, ``share=0.3``)
    Local: that share of the family's orders use unseen query terms (``drip_kicks``,
    ``fit_check``, ``y2k_baggy``, ``gorpcore_shell``; ``category`` stays the family), which carry
    their own fraud effect (+1.2: resellers of hyped items).
``sensor_hardware_change`` (``strength=1``)
    Global: new device hardware/firmware rescales and shifts every sensor reading in every region
    and group (motion x1.8 + 40, pressure x0.5 - 10, latency x1.6 + 25 ms, signal x0.8 + 15).
    The physical world and its relation to fraud are unchanged, so labels are identical to
    ``stable`` while a model trained on old readings degrades (log-loss 0.21 -> 0.41, error rate
    8 % -> 9.5 %: it blocks almost nothing).
``market_shift`` (``strength=1``)
    Global concept drift: P(X) is unchanged, P(y | X) changes: fraud rings move to aged (stolen)
    accounts, daytime, mobile apps and home goods; discounts and night hours stop mattering;
    device sensors look human; the fraud rate rises from about 10 % to about 12 % and the old
    ranking inverts (AUC 0.89 -> 0.3). ``strength`` blends the base and the shifted weights.
``label_scarcity`` (``coverage=0.05``, ``delay_days=5``)
    Label coverage drops and labels arrive later.
``complaints`` (``slice_column=channel``, ``slice_value=web``, ``coverage=0.1``, ``delay_days=3``)
    An account-takeover wave in a large slice (web: about 46 % of orders): aged accounts with clean
    histories suddenly commit fraud there (age weight -0.55 -> +0.8, chargeback weight -> 0, offset
    +1.3; the stale model's error rate goes from about 8 % to about 12 %), and labels become scarce
    and late, so the rising daily complaint count is the first evidence.
``group_shift`` (``group=group_b``, ``strength=1``)
    That group's features move (a wave of new customers: accounts 70 % younger, 40 % of the group
    switch to Android, older touchscreens read 10 units more pressure) and its fraud relation moves (young
    accounts, night hours and pressure no longer signal fraud there; offset +0.9 keeps its fraud
    rate near 10 %). A model trained before over-blocks the group (for the stale oracle: group_b
    AUC 0.89 -> 0.79, false-positive rate 2 % -> 9 %) while group_a is untouched.
``leakage_bug``
    A pipeline bug copies the label into ``prior_chargebacks`` (the feature equals ``is_fraud``).
``feedback_loop``
    Labels are only observed for orders the served model approved (served score <= block
    threshold): blocked orders never ship, so they can never charge back.

Serving, complaints, labels
---------------------------
The day's orders are scored by ``serving_fn`` (raw events -> P(fraud)), by default the stale
day-0 oracle. An order is blocked when its score exceeds ``block_threshold``. The served error
rate is the share of orders whose decision disagrees with the true label, and the day's
complaints are ``Poisson(orders * (complaint_base_rate + complaint_per_error * error_rate))``.
Observed labels are a ``coverage`` share (minus blocked orders under ``feedback_loop``) arriving
``delay`` days later. :func:`write_day` keeps not-yet-arrived labels in a private store under
``state_dir`` and writes the landing folder atomically. Randomness uses one generator per
(seed, day, purpose) and the same draws in every scenario, so a scenario changes only what it
is about: rows outside a promotion's region are identical to ``stable``'s.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

from ct_assets.core.data import schema

ID_STRIDE = 1_000_000  # event_id = day_index * ID_STRIDE + row
MS_PER_DAY = 86_400_000

ServingFn = Callable[[pd.DataFrame], np.ndarray]

# ---------------------------------------------------------------------------------------------
# Scenario catalogue and timeline
# ---------------------------------------------------------------------------------------------

NEW_SLANG_TERMS: tuple[str, ...] = ("drip_kicks", "fit_check", "y2k_baggy", "gorpcore_shell")


@dataclass(frozen=True)
class ScenarioSpec:
    """A named scenario: what it does in one line and its parameters with defaults."""

    name: str
    description: str
    defaults: Mapping[str, object] = field(default_factory=dict)


SCENARIOS: dict[str, ScenarioSpec] = {spec.name: spec for spec in (
    ScenarioSpec("stable", "nothing changes: the base world"),
    ScenarioSpec("regional_promotion",
                 "local: one region's discounts rise strongly and discounts stop signalling fraud there",
                 {"region": "south", "discount_share": 0.9, "discount_mean": 0.45,
                  "discount_effect": 0.3, "fraud_offset": 0.25}),
    ScenarioSpec("new_slang",
                 "local: unseen query terms appear in one category family, with their own fraud effect",
                 {"family": "fashion", "share": 0.3, "terms": NEW_SLANG_TERMS, "term_effect": 1.2}),
    ScenarioSpec("sensor_hardware_change",
                 "global: every sensor reading is rescaled/shifted by new hardware; physics unchanged",
                 {"strength": 1.0}),
    ScenarioSpec("market_shift",
                 "global concept drift: P(y|X) changes (coefficients and base rate), P(X) unchanged",
                 {"strength": 1.0}),
    ScenarioSpec("label_scarcity", "labels become scarce and late",
                 {"coverage": 0.05, "delay_days": 5}),
    ScenarioSpec("complaints",
                 "concept change in a large slice with scarce labels: complaints are the early evidence",
                 {"slice_column": "channel", "slice_value": "web", "coverage": 0.1, "delay_days": 3,
                  "strength": 1.0}),
    ScenarioSpec("group_shift",
                 "one protected group's features and fraud relation move: the old model gets unfair",
                 {"group": "group_b", "strength": 1.0}),
    ScenarioSpec("leakage_bug", "a pipeline bug copies the label into prior_chargebacks"),
    ScenarioSpec("feedback_loop", "labels are only observed for orders the served model approved"),
)}

# Parameters every scenario accepts in a timeline spec (stored on ScenarioEvent, not in params).
_UNTIL = "until"
_SLICE_COLUMNS = (*schema.CATEGORICAL_COLUMNS, schema.GROUP_COLUMN)


def _coerce(scenario: str, key: str, value: object, default: object) -> object:
    """``value`` converted to the type of ``default`` (strings come from timeline specs)."""
    try:
        if isinstance(default, tuple):
            items = value.split("|") if isinstance(value, str) else list(value)  # type: ignore[arg-type]
            terms = tuple(str(item).strip() for item in items)
            if not terms:
                raise ValueError("empty list")
            return terms
        if isinstance(default, str):
            if not isinstance(value, str):
                raise ValueError("not a string")
            return value.strip()
        if isinstance(default, int):
            if isinstance(value, float) and not value.is_integer():
                raise ValueError("not an integer")
            return int(value)  # type: ignore[call-overload]
        number = float(value)  # type: ignore[arg-type]
        if not math.isfinite(number):
            raise ValueError("not finite")
        return number
    except (TypeError, ValueError) as exc:
        raise ValueError(f"scenario {scenario!r}: parameter {key}={value!r} is not a valid "
                         f"{type(default).__name__} ({exc})") from exc


def _check_range(scenario: str, key: str, value: float, low: float, high: float) -> None:
    if not low <= value <= high:
        raise ValueError(f"scenario {scenario!r}: parameter {key}={value} must be within [{low}, {high}]")


def _check_settings(name: str, s: Mapping[str, object]) -> None:
    """Scenario-specific value checks, so a bad timeline fails when parsed, not mid-stream."""
    if name == "regional_promotion":
        if s["region"] not in schema.REGIONS:
            raise ValueError(f"scenario {name!r}: region {s['region']!r} is not one of {schema.REGIONS}")
        _check_range(name, "discount_share", s["discount_share"], 0.0, 1.0)  # type: ignore[arg-type]
        _check_range(name, "discount_mean", s["discount_mean"], 0.05, 0.9)  # type: ignore[arg-type]
    elif name == "new_slang":
        if s["family"] not in schema.CATEGORIES:
            raise ValueError(f"scenario {name!r}: family {s['family']!r} is not one of {schema.CATEGORIES}")
        _check_range(name, "share", s["share"], 0.0, 1.0)  # type: ignore[arg-type]
        for term in s["terms"]:  # type: ignore[attr-defined]
            if not term or len(term) > schema.MAX_TERM_LENGTH or term in schema.QUERY_TERMS:
                raise ValueError(f"scenario {name!r}: new term {term!r} must be non-empty, at most "
                                 f"{schema.MAX_TERM_LENGTH} characters and not a known query term")
    elif name in ("sensor_hardware_change", "market_shift", "complaints", "group_shift"):
        _check_range(name, "strength", s["strength"], 0.0, 1.0)  # type: ignore[arg-type]
    if name in ("label_scarcity", "complaints"):
        _check_range(name, "coverage", s["coverage"], 0.0, 1.0)  # type: ignore[arg-type]
        _check_range(name, "delay_days", s["delay_days"], 0, 365)  # type: ignore[arg-type]
    if name == "complaints":
        if s["slice_column"] not in _SLICE_COLUMNS:
            raise ValueError(f"scenario {name!r}: slice_column {s['slice_column']!r} is not one of {_SLICE_COLUMNS}")
        vocab = {"region": schema.REGIONS, "channel": schema.CHANNELS, "category": schema.CATEGORIES,
                 schema.GROUP_COLUMN: schema.PROTECTED_GROUPS}.get(str(s["slice_column"]))
        if vocab is not None and s["slice_value"] not in vocab:
            raise ValueError(f"scenario {name!r}: slice_value {s['slice_value']!r} is not one of {vocab}")
    if name == "group_shift" and s["group"] not in schema.PROTECTED_GROUPS:
        raise ValueError(f"scenario {name!r}: group {s['group']!r} is not one of {schema.PROTECTED_GROUPS}")


@dataclass(frozen=True)
class ScenarioEvent:
    """Scenario ``name`` active from ``start_day`` (inclusive) until ``end_day`` (exclusive, None = forever).

    ``params`` override the scenario's defaults (see ``SCENARIOS``); they are validated and
    converted on construction, e.g. ``ScenarioEvent("regional_promotion", 5, {"region": "west"})``.
    """

    name: str
    start_day: int
    params: Mapping[str, object] = field(default_factory=dict)
    end_day: int | None = None

    def __post_init__(self) -> None:
        if self.name not in SCENARIOS:
            raise ValueError(f"unknown scenario {self.name!r}; known: {', '.join(SCENARIOS)}")
        if isinstance(self.start_day, bool) or not isinstance(self.start_day, int) or self.start_day < 0:
            raise ValueError(f"scenario {self.name!r}: start_day must be a non-negative int, got {self.start_day!r}")
        if self.end_day is not None and (not isinstance(self.end_day, int) or self.end_day <= self.start_day):
            raise ValueError(f"scenario {self.name!r}: end day {self.end_day!r} must be an int after "
                             f"start day {self.start_day}")
        defaults = SCENARIOS[self.name].defaults
        unknown = sorted(set(self.params) - set(defaults))
        if unknown:
            raise ValueError(f"scenario {self.name!r}: unknown parameter(s) {unknown}; "
                             f"known: {sorted(defaults) or 'none'}")
        params = {key: _coerce(self.name, key, value, defaults[key]) for key, value in self.params.items()}
        _check_settings(self.name, {**defaults, **params})
        object.__setattr__(self, "params", params)

    @property
    def settings(self) -> dict[str, object]:
        """The scenario's parameters: defaults overridden by ``params``."""
        return {**SCENARIOS[self.name].defaults, **self.params}

    def active_on(self, day_index: int) -> bool:
        return self.start_day <= day_index and (self.end_day is None or day_index < self.end_day)


Timeline = tuple[ScenarioEvent, ...]
STABLE: Timeline = (ScenarioEvent("stable", 0),)


def _is_day_number(text: str) -> bool:
    return text.isascii() and text.isdigit()


def parse_timeline(spec: str) -> Timeline:
    """Parse a timeline spec: comma-separated ``name[@start_day][:key=value]...`` events.

    List values use ``|``; ``until=D`` ends an event before day D.

    >>> [(e.name, e.start_day) for e in parse_timeline("stable@0,regional_promotion@5:region=west")]
    [('stable', 0), ('regional_promotion', 5)]
    >>> parse_timeline("new_slang@3:family=home:terms=cozy_core|dupe_lamp")[0].settings["terms"]
    ('cozy_core', 'dupe_lamp')
    """
    if not isinstance(spec, str) or not spec.strip():
        raise ValueError("timeline spec is empty; e.g. 'stable' or 'stable@0,market_shift@10'")
    events = []
    for part in spec.split(","):
        where = f"timeline event {part.strip()!r}"
        head, *assignments = [piece.strip() for piece in part.strip().split(":")]
        name, _, day_text = head.partition("@")
        name = name.strip()
        if not name:
            raise ValueError(f"{where} has no scenario name")
        if "@" in head:
            if not _is_day_number(day_text.strip()):
                raise ValueError(f"{where}: start day {day_text!r} is not a non-negative integer")
            start_day = int(day_text)
        else:
            start_day = 0
        params: dict[str, object] = {}
        end_day = None
        for assignment in assignments:
            key, equals, value = (text.strip() for text in assignment.partition("="))
            if not equals or not key or not value:
                raise ValueError(f"{where}: parameter {assignment!r} must look like key=value")
            if key in params or (key == _UNTIL and end_day is not None):
                raise ValueError(f"{where}: parameter {key!r} given twice")
            if key == _UNTIL:
                if not _is_day_number(value):
                    raise ValueError(f"{where}: until={value!r} is not a day number")
                end_day = int(value)
            else:
                params[key] = value
        events.append(ScenarioEvent(name, start_day, params, end_day))
    return tuple(events)


def format_timeline(timeline: Timeline) -> str:
    """The spec string :func:`parse_timeline` turns back into ``timeline`` (for logs and manifests)."""
    parts = []
    for event in timeline:
        text = f"{event.name}@{event.start_day}"
        for key, value in event.params.items():
            text += f":{key}={'|'.join(value) if isinstance(value, tuple) else value}"
        if event.end_day is not None:
            text += f":{_UNTIL}={event.end_day}"
        parts.append(text)
    return ",".join(parts)


def active_events(timeline: Timeline, day_index: int) -> Timeline:
    """The events of ``timeline`` in force on ``day_index``, in timeline order."""
    return tuple(event for event in timeline if event.active_on(day_index))


# ---------------------------------------------------------------------------------------------
# Configuration
# ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class SimulatorConfig:
    """Everything that determines the stream; two equal configs generate identical days."""

    seed: int = 7
    rows_per_day: int = 2000
    start_date: date = date(2025, 1, 1)
    label_delay_days: int = 1
    label_coverage: float = 0.8
    block_threshold: float = 0.5
    complaint_base_rate: float = 0.002  # complaints per order when the served model makes no error
    complaint_per_error: float = 0.1  # extra complaints per order per unit of served error rate
    timeline: Timeline = STABLE

    def __post_init__(self) -> None:
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise ValueError(f"seed must be a non-negative int, got {self.seed!r}")
        if not 1 <= self.rows_per_day < ID_STRIDE:
            raise ValueError(f"rows_per_day must be within [1, {ID_STRIDE - 1}], got {self.rows_per_day}")
        if self.label_delay_days < 0:
            raise ValueError(f"label_delay_days must be >= 0, got {self.label_delay_days}")
        for name in ("label_coverage", "block_threshold"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be within [0, 1], got {getattr(self, name)}")
        if self.complaint_base_rate < 0 or self.complaint_per_error < 0:
            raise ValueError("complaint_base_rate and complaint_per_error must be >= 0")
        if not isinstance(self.timeline, tuple) or not self.timeline \
                or not all(isinstance(event, ScenarioEvent) for event in self.timeline):
            raise ValueError("timeline must be a non-empty tuple of ScenarioEvent (see parse_timeline)")

    def day_date(self, day_index: int) -> date:
        """The calendar date of ``day_index``."""
        _check_day_index(day_index)
        return self.start_date + timedelta(days=day_index)


def _check_day_index(day_index: int) -> None:
    if isinstance(day_index, bool) or not isinstance(day_index, (int, np.integer)) or day_index < 0:
        raise ValueError(f"day_index must be a non-negative int, got {day_index!r}")


# ---------------------------------------------------------------------------------------------
# Ground truth: coefficients and regimes
# ---------------------------------------------------------------------------------------------

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
    _check_day_index(day_index)
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


def _sigmoid(x: np.ndarray) -> np.ndarray:
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


def _probability_under(events: pd.DataFrame, regime: Regime) -> np.ndarray:
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
    return _sigmoid(logit)


# ---------------------------------------------------------------------------------------------
# Generation
# ---------------------------------------------------------------------------------------------

_GROUP_B_SHARE = 0.3
_REGION_CDF = {  # group_b lives more in south and east
    "group_a": np.cumsum([0.24, 0.18, 0.20, 0.20, 0.18]),
    "group_b": np.cumsum([0.14, 0.28, 0.26, 0.14, 0.18]),
}
_CATEGORY_CDF = np.cumsum([0.28, 0.24, 0.18, 0.14, 0.16])
_CATEGORY_MEDIAN_PRICE = np.array([250.0, 80.0, 120.0, 35.0, 60.0])
_TERMS_BY_CATEGORY = tuple(tuple(t for t, c in schema.QUERY_TERMS.items() if c == cat) for cat in schema.CATEGORIES)
_FLAT_TERMS = np.array([t for terms in _TERMS_BY_CATEGORY for t in terms], dtype=object)
_TERM_OFFSETS = np.cumsum([0] + [len(t) for t in _TERMS_BY_CATEGORY[:-1]])
_TERM_COUNTS = np.array([len(t) for t in _TERMS_BY_CATEGORY])
_DIURNAL = np.array([1.0, 0.6, 0.4, 0.3, 0.3, 0.4, 0.8, 1.5, 2.5, 3.0, 3.2, 3.4,
                     3.6, 3.4, 3.2, 3.2, 3.4, 3.8, 4.2, 4.6, 4.8, 4.2, 3.0, 1.8])
_NIGHT = np.array([4.0, 5.0, 5.0, 4.5, 4.0, 3.0, 1.0, 0.5, 0.4, 0.4, 0.4, 0.4,
                   0.4, 0.4, 0.4, 0.4, 0.4, 0.5, 0.6, 0.8, 1.0, 1.5, 2.5, 3.5])
_DIURNAL_CDF, _NIGHT_CDF = np.cumsum(_DIURNAL / _DIURNAL.sum()), np.cumsum(_NIGHT / _NIGHT.sum())
_RANGES = {c.name: (c.min_value, c.max_value) for c in schema.NUMERIC_COLUMNS}

# Purposes of the per-day random generators (independent streams).
_FEATURES, _OBSERVATION, _COMPLAINTS = 0, 1, 2


def _rng(config: SimulatorConfig, day_index: int, purpose: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([config.seed, int(day_index), purpose]))


def _draws(config: SimulatorConfig, day_index: int) -> dict[str, np.ndarray]:
    """All random numbers of a day's orders, in time order; identical in every scenario."""
    n = config.rows_per_day
    rng = _rng(config, day_index, _FEATURES)
    d = {name: rng.random(n) for name in (
        "group", "region", "channel", "category", "term", "discounted", "promo_discounted",
        "slang", "slang_pick", "group_channel", "hour_profile", "hour", "second", "label")}
    d.update({name: rng.standard_normal(n) for name in (
        "z", "age", "price", "promo_level", "motion", "pressure", "latency", "signal")})
    d["discount_level"] = rng.beta(2.0, 6.0, n)
    z = d["z"]
    d["extra_quantity"] = rng.poisson(0.35 + 0.5 * _sigmoid(2.0 * z - 2.0)).astype(float)
    d["chargebacks"] = rng.poisson(0.04 + 0.5 * _sigmoid(2.5 * z - 3.5)).astype(float)
    night_profile = d["hour_profile"] < _sigmoid(1.8 * z - 3.2)
    hour = np.where(night_profile, np.searchsorted(_NIGHT_CDF, d["hour"], side="right"),
                    np.searchsorted(_DIURNAL_CDF, d["hour"], side="right"))
    # Millisecond timestamps inside the day; rows are put in time order so ids follow time.
    d["ms"] = (np.minimum(hour, 23) * 3_600_000 + np.floor(d["second"] * 3_600_000)).astype(np.int64)
    order = np.argsort(d["ms"], kind="stable")
    return {name: values[order] for name, values in d.items()}


def _clip(column: str, values: np.ndarray) -> np.ndarray:
    low, high = _RANGES[column]
    return np.clip(values, low, high)


def _simulate_events(config: SimulatorConfig, day_index: int, regime: Regime,
                     d: dict[str, np.ndarray]) -> pd.DataFrame:
    """The day's orders as the world ``regime`` produces them from draws ``d`` (before any pipeline bug)."""
    n = config.rows_per_day
    z = d["z"]
    group_b = d["group"] < _GROUP_B_SHARE
    groups = np.where(group_b, "group_b", "group_a").astype(object)
    shift_strength = np.zeros(n)
    for group, weight in regime.group_shifts:
        shift_strength[groups == group] = np.maximum(shift_strength[groups == group], weight)

    region_idx = np.where(group_b, np.searchsorted(_REGION_CDF["group_b"], d["region"], side="right"),
                          np.searchsorted(_REGION_CDF["group_a"], d["region"], side="right"))
    regions = np.array(schema.REGIONS, dtype=object)[np.minimum(region_idx, len(schema.REGIONS) - 1)]

    p_web = 0.42 + 0.3 * _sigmoid(2.0 * z - 3.0)
    p_ios = (1 - p_web) * np.where(group_b, 0.35, 0.55)
    channels = np.where(d["channel"] < p_web, "web", np.where(d["channel"] < p_web + p_ios, "ios", "android"))
    channels = np.where(d["group_channel"] < 0.4 * shift_strength, "android", channels).astype(object)

    category_idx = np.minimum(np.searchsorted(_CATEGORY_CDF, d["category"], side="right"), len(schema.CATEGORIES) - 1)
    categories = np.array(schema.CATEGORIES, dtype=object)[category_idx]
    terms = _FLAT_TERMS[_TERM_OFFSETS[category_idx] + np.floor(d["term"] * _TERM_COUNTS[category_idx]).astype(int)]
    for s in regime.slang:
        new_terms = np.array(s["terms"], dtype=object)
        chosen = (categories == s["family"]) & (d["slang"] < float(s["share"]))  # type: ignore[arg-type]
        terms = np.where(chosen, new_terms[np.floor(d["slang_pick"] * len(new_terms)).astype(int)], terms)

    price = np.exp(np.log(_CATEGORY_MEDIAN_PRICE[category_idx]) + 0.6 * d["price"] + 0.1 * z - 0.15 * group_b)
    discount = np.where(d["discounted"] < 0.35 + 0.2 * _sigmoid(z), 0.05 + 0.6 * d["discount_level"], 0.0)
    for s in regime.promotions:
        in_region = regions == s["region"]
        level = np.clip(float(s["discount_mean"]) + 0.1 * d["promo_level"], 0.05, 0.9)  # type: ignore[arg-type]
        promo = np.where(d["promo_discounted"] < float(s["discount_share"]), level, 0.0)  # type: ignore[arg-type]
        discount = np.where(in_region, promo, discount)
    log_age = np.log(np.where(group_b, 250.0, 450.0)) - 0.5 * z + 1.0 * d["age"]
    account_age = np.floor(np.exp(log_age) * (1 - 0.7 * shift_strength))

    motion = 50.0 - 18.0 * z + 15.0 * d["motion"]
    pressure = 30.0 + 9.0 * z + 8.0 * d["pressure"] + 10.0 * shift_strength  # older touchscreens
    latency = np.exp(math.log(120.0) - 0.35 * z + 0.4 * d["latency"])
    signal = -60.0 + 8.0 * d["signal"] - 5.0 * (regions == "central")
    sensors = {}
    for column, physical in zip(schema.SENSOR_COLUMNS, (motion, pressure, latency, signal)):
        scale, shift = regime.sensor_transform[column]
        sensors[column] = np.round(_clip(column, scale * physical + shift), 3)

    day_start = np.datetime64(config.day_date(day_index).isoformat(), "ms")
    return pd.DataFrame({
        schema.ID_COLUMN: np.arange(n, dtype=np.int64) + int(day_index) * ID_STRIDE,
        schema.TIME_COLUMN: (day_start + d["ms"].astype("timedelta64[ms]")).astype("datetime64[us]"),
        "region": regions, "channel": channels, "query_term": terms, "category": categories,
        "price": np.round(_clip("price", price), 2),
        "discount": np.round(_clip("discount", discount), 3),
        "quantity": _clip("quantity", 1.0 + d["extra_quantity"]).astype(np.int64),
        "account_age_days": _clip("account_age_days", account_age).astype(np.int64),
        "prior_chargebacks": _clip("prior_chargebacks", d["chargebacks"]).astype(np.int64),
        **sensors,
        schema.GROUP_COLUMN: groups,
    })[list(schema.EVENT_COLUMNS)]


@dataclass(frozen=True)
class DayBatch:
    """One simulated day.

    ``events`` are the orders as delivered (schema.EVENT_COLUMNS, pipeline bugs included);
    ``is_fraud`` / ``true_probability`` / ``served_scores`` / ``blocked`` are aligned with them;
    ``labels`` are the observed labels (event_id, is_fraud, labelled_at, arrival_day) and
    ``complaints`` the one-row complaint count (day, orders, complaints).
    """

    day_index: int
    day: date
    scenarios: tuple[str, ...]
    events: pd.DataFrame
    is_fraud: np.ndarray
    true_probability: np.ndarray
    served_scores: np.ndarray
    blocked: np.ndarray
    served_error_rate: float
    labels: pd.DataFrame
    complaints: pd.DataFrame


def true_fraud_probability(events: pd.DataFrame, config: SimulatorConfig, day_index: int) -> np.ndarray:
    """Ground-truth P(is_fraud) of ``events`` (simulated on ``day_index``) in that day's regime.

    Under ``leakage_bug`` the delivered ``prior_chargebacks`` hold the label, so the real values
    are regenerated for the given event ids (which must then be that day's simulator ids).
    """
    regime = regime_for_day(config, day_index)
    if regime.leakage and len(events):
        rows = events[schema.ID_COLUMN].to_numpy(dtype=np.int64) - int(day_index) * ID_STRIDE
        if rows.min() < 0 or rows.max() >= config.rows_per_day:
            raise ValueError(f"event ids are not day {day_index}'s simulator ids; cannot undo leakage_bug")
        clean = _simulate_events(config, day_index, regime, _draws(config, day_index))
        events = events.assign(prior_chargebacks=clean["prior_chargebacks"].to_numpy()[rows])
    return _probability_under(events, regime)


def base_regime_probability(events: pd.DataFrame, config: SimulatorConfig) -> np.ndarray:
    """P(fraud) as day 0's world would score ``events`` as delivered: the default served model.

    It knows nothing that changed after day 0 (and takes leaked or rescaled columns at face value).
    """
    return _probability_under(events, regime_for_day(config, 0))


def _serve(events: pd.DataFrame, config: SimulatorConfig, serving_fn: ServingFn | None) -> np.ndarray:
    if serving_fn is None:
        return base_regime_probability(events, config)
    scores = np.asarray(serving_fn(events.copy()), dtype=float).reshape(-1)
    if scores.shape != (len(events),):
        raise ValueError(f"serving_fn returned {scores.shape[0]} scores for {len(events)} events")
    if not np.all(np.isfinite(scores)) or scores.min(initial=0.0) < 0 or scores.max(initial=0.0) > 1:
        raise ValueError("serving_fn must return finite probabilities within [0, 1]")
    return scores


def generate_day(config: SimulatorConfig, day_index: int, serving_fn: ServingFn | None = None) -> DayBatch:
    """Simulate day ``day_index``: orders, their labels (observed ones with arrival day), complaints.

    >>> batch = generate_day(SimulatorConfig(rows_per_day=100), 0)
    >>> len(batch.events), int(batch.complaints["orders"].iloc[0])
    (100, 100)
    """
    regime = regime_for_day(config, day_index)
    day = config.day_date(day_index)
    draws = _draws(config, day_index)
    clean = _simulate_events(config, day_index, regime, draws)
    probability = _probability_under(clean, regime)
    is_fraud = (draws["label"] < probability).astype(np.int64)
    events = clean.assign(prior_chargebacks=is_fraud) if regime.leakage else clean

    scores = _serve(events, config, serving_fn)
    blocked = scores > config.block_threshold
    n = len(events)
    error_rate = float(np.mean(blocked != is_fraud.astype(bool))) if n else 0.0
    complaint_rate = config.complaint_base_rate + config.complaint_per_error * error_rate
    complaints = int(_rng(config, day_index, _COMPLAINTS).poisson(n * complaint_rate))

    observation = _rng(config, day_index, _OBSERVATION)
    observed = observation.random(n) < regime.label_coverage
    when = observation.random(n)
    if regime.feedback_loop:
        observed &= ~blocked
    arrival_day = day_index + regime.label_delay_days
    # A label arrives some time during its arrival day, never before its order (delay 0).
    earliest_ms = draws["ms"] if regime.label_delay_days == 0 else np.zeros(n, dtype=np.int64)
    labelled_ms = earliest_ms + np.floor(when * (MS_PER_DAY - earliest_ms)).astype(np.int64)
    arrival_start = np.datetime64(config.day_date(arrival_day).isoformat(), "ms")
    labels = pd.DataFrame({
        schema.ID_COLUMN: events[schema.ID_COLUMN].to_numpy()[observed],
        schema.LABEL_COLUMN: is_fraud[observed],
        "labelled_at": (arrival_start + labelled_ms[observed].astype("timedelta64[ms]")).astype("datetime64[us]"),
        "arrival_day": np.full(int(observed.sum()), arrival_day, dtype=np.int64),
    })
    return DayBatch(
        day_index=int(day_index), day=day, scenarios=regime.scenarios, events=events, is_fraud=is_fraud,
        true_probability=probability, served_scores=scores, blocked=blocked, served_error_rate=error_rate,
        labels=labels,
        complaints=pd.DataFrame({"day": [pd.Timestamp(day)], "orders": [n], "complaints": [complaints]})
        .astype({"day": "datetime64[us]", "orders": np.int64, "complaints": np.int64}),
    )


# ---------------------------------------------------------------------------------------------
# Landing files
# ---------------------------------------------------------------------------------------------

def _arrow_schema(kind: str):  # -> pyarrow.Schema (lazy import keeps module import fast)
    import pyarrow as pa

    if kind == "events":
        types = {schema.ID_COLUMN: pa.int64(), schema.TIME_COLUMN: pa.timestamp("us"),
                 **{c: pa.string() for c in schema.CATEGORICAL_COLUMNS},
                 **{c.name: (pa.int64() if c.dtype == "int" else pa.float64()) for c in schema.NUMERIC_COLUMNS},
                 schema.GROUP_COLUMN: pa.string()}
    elif kind == "labels":
        types = {schema.ID_COLUMN: pa.int64(), schema.LABEL_COLUMN: pa.int64(), "labelled_at": pa.timestamp("us")}
    elif kind == "pending":
        types = {schema.ID_COLUMN: pa.int64(), schema.LABEL_COLUMN: pa.int64(), "labelled_at": pa.timestamp("us"),
                 "arrival_day": pa.int64()}
    else:
        types = {"day": pa.date32(), "orders": pa.int64(), "complaints": pa.int64()}
    return pa.schema(list(types.items()))


def _write_parquet(frame: pd.DataFrame, path: Path, kind: str) -> None:
    """Write ``frame`` with fixed Arrow types (BIGINT, TIMESTAMP, DOUBLE, VARCHAR, DATE)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    arrow_schema = _arrow_schema(kind)
    table = pa.Table.from_pandas(frame[list(arrow_schema.names)], schema=arrow_schema, preserve_index=False)
    pq.write_table(table, path)


def _read_pending(path: Path) -> pd.DataFrame:
    import pyarrow.parquet as pq

    return pq.read_table(path).to_pandas()


def _pending_dir(state_dir: Path, config: SimulatorConfig, arrival_day: int) -> Path:
    return Path(state_dir) / "pending_labels" / config.day_date(arrival_day).isoformat()


def _marker(state_dir: Path, config: SimulatorConfig, day_index: int) -> Path:
    return Path(state_dir) / "generated" / f"{config.day_date(day_index).isoformat()}.json"


def _atomic_write_file(frame: pd.DataFrame, path: Path, kind: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    _write_parquet(frame, tmp, kind)
    os.replace(tmp, path)


def next_day_index(state_dir: Path, config: SimulatorConfig) -> int:
    """The first day index not yet generated into ``state_dir`` (0 for a fresh store)."""
    day_index = 0
    while _marker(state_dir, config, day_index).exists():
        day_index += 1
    return day_index


def write_day(landing_dir: Path, state_dir: Path, config: SimulatorConfig, day_index: int,
              serving_fn: ServingFn | None = None, overwrite: bool = False) -> Path:
    """Generate day ``day_index`` and land it as ``<landing>/<YYYY-MM-DD>/`` (returned).

    The folder holds events.parquet, labels.parquet (every pending label arriving that day; maybe
    empty) and complaints.parquet. It appears atomically (written under a dot-prefixed temporary
    name, then renamed). Labels not yet arrived wait in ``state_dir`` (the pipeline never reads
    it). Days are written in order (day d needs day d-1 written before) so that every label
    reaches its arrival day; an existing day is refused unless ``overwrite``.
    """
    landing_dir, state_dir = Path(landing_dir), Path(state_dir)
    day = config.day_date(day_index)
    target = landing_dir / day.isoformat()
    if target.exists() and not overwrite:
        raise ValueError(f"landing day {target} already exists; pass overwrite=True to replace it")
    if day_index > 0 and not _marker(state_dir, config, day_index - 1).exists():
        raise ValueError(f"day {day_index - 1} ({config.day_date(day_index - 1)}) has not been written to "
                         f"{state_dir}; write days in order (see write_history)")
    batch = generate_day(config, day_index, serving_fn)

    # Replace this day's pending labels (a rewrite may use another delay), then collect arrivals.
    own_file = f"{day.isoformat()}.parquet"
    for stale in (state_dir / "pending_labels").glob(f"*/{own_file}"):
        stale.unlink()
    if len(batch.labels):
        arrival = int(batch.labels["arrival_day"].iloc[0])
        _atomic_write_file(batch.labels, _pending_dir(state_dir, config, arrival) / own_file, "pending")
    arrived = [_read_pending(path) for path in sorted(_pending_dir(state_dir, config, day_index).glob("*.parquet"))]
    arrived = [frame for frame in arrived if len(frame)]
    labels = (pd.concat(arrived, ignore_index=True).sort_values(schema.ID_COLUMN, ignore_index=True) if arrived
              else batch.labels.iloc[:0])

    landing_dir.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{day.isoformat()}.", dir=landing_dir))
    try:
        _write_parquet(batch.events, tmp / schema.EVENTS_FILE, "events")
        _write_parquet(labels, tmp / schema.LABELS_FILE, "labels")
        _write_parquet(batch.complaints, tmp / schema.COMPLAINTS_FILE, "complaints")
        os.chmod(tmp, 0o755)
        if target.exists():
            # A directory cannot be renamed over a non-empty one: move the old day aside first.
            old = Path(tempfile.mkdtemp(prefix=f".{day.isoformat()}.old.", dir=landing_dir))
            os.replace(target, old / "day")
            os.replace(tmp, target)
            shutil.rmtree(old)
        else:
            os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise

    marker = _marker(state_dir, config, day_index)
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.write_text(json.dumps({
        "day": day.isoformat(), "day_index": int(day_index), "scenarios": list(batch.scenarios),
        "orders": len(batch.events), "labels_generated": len(batch.labels), "labels_landed": len(labels),
        "served_error_rate": batch.served_error_rate,
        "complaints": int(batch.complaints["complaints"].iloc[0]),
        "timeline": format_timeline(config.timeline),
    }, indent=2))
    return target


def write_history(landing_dir: Path, state_dir: Path, config: SimulatorConfig, days: int,
                  serving_fn: ServingFn | None = None, overwrite: bool = False) -> list[Path]:
    """Land days ``0 .. days-1`` in order; days already written are kept unless ``overwrite``.

    Returns the folders written by this call: resuming a partly seeded history writes only the
    rest, and a day whose folder landed without its state record (a crash in between) is rewritten.
    """
    if days < 0:
        raise ValueError(f"days must be >= 0, got {days}")
    written = []
    for day_index in range(days):
        landed = (Path(landing_dir) / config.day_date(day_index).isoformat()).exists()
        if landed and _marker(state_dir, config, day_index).exists() and not overwrite:
            continue
        written.append(write_day(landing_dir, state_dir, config, day_index, serving_fn, overwrite=overwrite or landed))
    return written
