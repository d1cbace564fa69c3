"""Day generation: a seeded stream of online-shop orders with delayed fraud-chargeback labels.

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

The fraud label is drawn from the day's ground truth (:mod:`ct_assets.simulation.regimes`); the
scenarios that change the world are in :mod:`ct_assets.simulation.scenarios`.

Serving, complaints, labels
---------------------------
The day's orders are scored by ``serving_fn`` (raw events -> P(fraud)), by default the stale
day-0 oracle. An order is blocked when its score exceeds ``block_threshold``. The served error
rate is the share of orders whose decision disagrees with the true label, and the day's
complaints are ``Poisson(orders * (complaint_base_rate + complaint_per_error * error_rate))``.
Observed labels are a ``coverage`` share (minus blocked orders under ``feedback_loop``) arriving
``delay`` days later. Randomness uses one generator per (seed, day, purpose) and the same draws
in every scenario, so a scenario changes only what it is about: rows outside a promotion's region
are identical to ``stable``'s.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date

import numpy as np
import pandas as pd

from ct_assets.core.data import schema
from ct_assets.simulation.config import ID_STRIDE, SimulatorConfig
from ct_assets.simulation.regimes import Regime, probability_under, regime_for_day, sigmoid

MS_PER_DAY = 86_400_000

ServingFn = Callable[[pd.DataFrame], np.ndarray]


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
    d["extra_quantity"] = rng.poisson(0.35 + 0.5 * sigmoid(2.0 * z - 2.0)).astype(float)
    d["chargebacks"] = rng.poisson(0.04 + 0.5 * sigmoid(2.5 * z - 3.5)).astype(float)
    night_profile = d["hour_profile"] < sigmoid(1.8 * z - 3.2)
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

    p_web = 0.42 + 0.3 * sigmoid(2.0 * z - 3.0)
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
    discount = np.where(d["discounted"] < 0.35 + 0.2 * sigmoid(z), 0.05 + 0.6 * d["discount_level"], 0.0)
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
    return probability_under(events, regime)


def base_regime_probability(events: pd.DataFrame, config: SimulatorConfig) -> np.ndarray:
    """P(fraud) as day 0's world would score ``events`` as delivered: the default served model.

    It knows nothing that changed after day 0 (and takes leaked or rescaled columns at face value).
    """
    return probability_under(events, regime_for_day(config, 0))


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
    probability = probability_under(clean, regime)
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
        schema.FRAUD_LABEL_COLUMN: is_fraud[observed],
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
