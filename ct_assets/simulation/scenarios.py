"""The scenario catalogue and timelines: which changes to the world happen, and from which day.

A timeline is a tuple of :class:`ScenarioEvent` ("from day D, event E"), usually parsed from a
spec such as ``"stable@0,regional_promotion@5:region=west,sensor_hardware_change@12"``; an event
may end with ``:until=D``. Events active on the same day compose (see
:func:`ct_assets.simulation.regimes.regime_for_day`): covariate changes and local concepts stack,
hardware changes chain, label coverage is the smallest and delay the largest asked for. Figures
below are for the stale day-0 oracle at the default seed.

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
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

from ct_assets.core.data import schema

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
