"""Load and validate the retrain-vs-fine-tune policy thresholds (``ct_assets/policy.toml``).

Every threshold the decision policy (``core/decision/policy.py``) uses lives in that one TOML file. This module
parses it with :mod:`tomllib` into a frozen :class:`PolicyConfig`, one frozen dataclass per TOML table
(``*Thresholds`` for the tables that hold one rule's thresholds; the monitoring tests' own settings are
``DriftConfig``, ``ConceptDriftConfig`` and ``ComplaintConfig`` in ``core/monitoring``).
Validation is strict so a typo cannot silently switch a rule off: an unknown key, a missing key, a value
of the wrong type or out of range each raise ``ValueError`` naming the dotted key
(``labels.min_batches_for_retrain``).

>>> config = load_policy_config()
>>> config.technical_debt.max_consecutive_fine_tunes >= 1
True
>>> config.policy_version.startswith(config.version + "+")
True
"""

from __future__ import annotations

import hashlib
import json
import math
import statistics
import tomllib
import typing
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Mapping, Sequence

DEFAULT_POLICY_PATH = Path(__file__).resolve().parents[2] / "policy.toml"

# The four actions a decision can take; the config names two of them (what to do when labels are scarce).
ACTION_NONE = "none"
ACTION_FINE_TUNE = "fine_tune"
ACTION_RETRAIN = "retrain"
ACTION_ESCALATE = "escalate_to_human"


def _bounds(minimum: float | None = None, maximum: float | None = None,
            choices: tuple[str, ...] | None = None) -> Any:
    """A dataclass field whose metadata carries the allowed range or choices of its TOML value."""
    return field(metadata={"minimum": minimum, "maximum": maximum, "choices": choices})


@dataclass(frozen=True)
class DriftThresholds:
    """Thresholds of the drift-scope rule."""

    min_severity_score: float = _bounds(0.0, 1.0)


@dataclass(frozen=True)
class ConceptDriftThresholds:
    """Thresholds of the concept-drift rule."""

    min_metric_drop: float = _bounds(0.0, 1.0)


@dataclass(frozen=True)
class MetricThresholds:
    """Thresholds of the falling-metric rule (drops in the evaluation metric's own units)."""

    fine_tune_drop: float = _bounds(0.0, 1.0)
    retrain_drop: float = _bounds(0.0, 1.0)


@dataclass(frozen=True)
class ComplaintThresholds:
    """Thresholds of the rising-complaints rule."""

    min_rate_ratio: float = _bounds(1.0)


@dataclass(frozen=True)
class UnseenCategoryThresholds:
    """Thresholds of the unseen-categories rule."""

    fine_tune_share: float = _bounds(0.0, 1.0)


@dataclass(frozen=True)
class LabelThresholds:
    """Thresholds of the label rules (accumulation trigger and sufficiency constraint), in batches' worth of
    labelled rows: multiples of the stream's typical labelled rows per period, so one file fits 200-row and
    100k-row batches."""

    accumulated_trigger_batches: float = _bounds(0.0)
    min_batches_for_retrain: float = _bounds(0.0)
    min_coverage_for_retrain: float = _bounds(0.0, 1.0)
    min_batches_for_fine_tune: float = _bounds(0.0)
    when_scarce_for_retrain: str = _bounds(choices=(ACTION_FINE_TUNE, ACTION_ESCALATE))
    strong_evidence_min_severity: float = _bounds(0.0, 1.0)


TIMING_COST_AWARE, TIMING_ON_EVIDENCE = "cost_aware", "on_evidence"
TIMINGS: tuple[str, ...] = (TIMING_COST_AWARE, TIMING_ON_EVIDENCE)


@dataclass(frozen=True)
class AvoidableLossConfig:
    """The cost-aware trigger: an update pays when the avoidable errors since the last update, at this
    price, exceed its expected cost; ``noise_z`` is the width (in standard errors) of a batch's error noise.
    ``timing = "on_evidence"`` switches the trigger off: updates follow the evidence rules as soon as they fire."""

    timing: str = _bounds(choices=TIMINGS)
    price_per_error: float = _bounds(0.0)
    noise_z: float = _bounds(0.0)


@dataclass(frozen=True)
class StalenessConfig:
    """Freshness policy of the production model and the periodic evaluation schedule."""

    max_age_days: float = _bounds(0.0)
    schedule_cron: str = _bounds()


@dataclass(frozen=True)
class TechnicalDebtConfig:
    """Bounds on consecutive patching before a full retrain is required."""

    max_consecutive_fine_tunes: int = _bounds(1)
    max_fine_tune_divergence: float = _bounds(0.0)


@dataclass(frozen=True)
class CostConfig:
    """Compute/energy budget per period and the cost estimates used before any run was measured."""

    unit: str = _bounds(choices=("train_gflops", "cpu_seconds", "kwh"))
    budget_per_period: float = _bounds(0.0)
    period_days: int = _bounds(1)
    default_retrain_cost: float = _bounds(0.0)
    default_fine_tune_cost: float = _bounds(0.0)


@dataclass(frozen=True)
class RiskConfig:
    """Behaviour of the high risk tier."""

    high_risk_min_severity_score: float = _bounds(0.0, 1.0)
    high_risk_requires_approval: bool = _bounds()


@dataclass(frozen=True)
class JurisdictionConfig:
    """Regions whose regulation requires human sign-off before a model update is promoted."""

    signoff_regions: tuple[str, ...] = _bounds()


@dataclass(frozen=True)
class PolicyConfig:
    """All thresholds of the decision policy, one attribute per TOML table.

    ``policy_version`` is ``<version>+<10 hex digits>``: the hash covers every threshold, so two decisions
    with the same policy_version were made under identical thresholds even if someone forgot to bump
    ``version``.
    """

    version: str
    drift: DriftThresholds
    concept_drift: ConceptDriftThresholds
    metric: MetricThresholds
    complaints: ComplaintThresholds
    unseen_categories: UnseenCategoryThresholds
    labels: LabelThresholds
    avoidable_loss: AvoidableLossConfig
    staleness: StalenessConfig
    technical_debt: TechnicalDebtConfig
    cost: CostConfig
    risk: RiskConfig
    jurisdiction: JurisdictionConfig
    policy_version: str


_SECTIONS: dict[str, type] = {
    "drift": DriftThresholds,
    "concept_drift": ConceptDriftThresholds,
    "metric": MetricThresholds,
    "complaints": ComplaintThresholds,
    "unseen_categories": UnseenCategoryThresholds,
    "labels": LabelThresholds,
    "avoidable_loss": AvoidableLossConfig,
    "staleness": StalenessConfig,
    "technical_debt": TechnicalDebtConfig,
    "cost": CostConfig,
    "risk": RiskConfig,
    "jurisdiction": JurisdictionConfig,
}
_TOP_LEVEL_KEYS: frozenset[str] = frozenset({"version", *_SECTIONS})


def load_policy_config(path: str | Path = DEFAULT_POLICY_PATH) -> PolicyConfig:
    """Read and validate a policy TOML file (the shipped ``ct_assets/policy.toml`` by default).

    Raises ``ValueError`` for malformed TOML and for any invalid, unknown or missing key.
    """
    policy_path = Path(path)
    try:
        raw = tomllib.loads(policy_path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as error:
        raise ValueError(f"policy config {policy_path} is not valid TOML: {error}") from error
    return parse_policy_config(raw)


def parse_policy_config(raw: Mapping[str, Any]) -> PolicyConfig:
    """Validate an already-parsed policy mapping (the TOML document as a dict) into a ``PolicyConfig``."""
    if not isinstance(raw, Mapping):
        raise ValueError(f"policy config must be a mapping of tables, got {type(raw).__name__}")
    _check_keys(raw, _TOP_LEVEL_KEYS, prefix="")
    version = raw["version"]
    if not isinstance(version, str) or not version.strip():
        raise ValueError(f"policy config key 'version': expected a non-empty string, got {version!r}")
    sections: dict[str, Any] = {}
    for name, section_type in _SECTIONS.items():
        table = raw[name]
        if not isinstance(table, Mapping):
            raise ValueError(f"policy config key '{name}': expected a table, got {type(table).__name__}")
        sections[name] = _parse_section(section_type, table, prefix=name)
    config = PolicyConfig(version=version, policy_version=f"{version}+{_thresholds_hash(raw)}", **sections)
    _check_cross_field_rules(config)
    return config


def _check_keys(table: Mapping[str, Any], expected: frozenset[str], prefix: str) -> None:
    """Reject unknown keys (likely typos) and missing keys, naming them with their dotted path."""
    unknown = sorted(set(table) - expected)
    if unknown:
        raise ValueError(f"policy config has unknown key '{prefix}{unknown[0]}' (allowed: {sorted(expected)})")
    missing = sorted(expected - set(table))
    if missing:
        raise ValueError(f"policy config is missing key '{prefix}{missing[0]}'")


def _parse_section(section_type: type, table: Mapping[str, Any], prefix: str) -> Any:
    """Build one section dataclass, checking each value's type and range against the field metadata."""
    section_fields = fields(section_type)
    _check_keys(table, frozenset(f.name for f in section_fields), prefix=f"{prefix}.")
    hints = typing.get_type_hints(section_type)
    values = {f.name: _parse_value(f"{prefix}.{f.name}", table[f.name], hints[f.name], f.metadata)
              for f in section_fields}
    return section_type(**values)


def _parse_value(key: str, value: Any, expected_type: Any, bounds: Mapping[str, Any]) -> Any:
    """Return ``value`` converted to ``expected_type`` or raise ValueError naming ``key``."""
    if expected_type is bool:
        if not isinstance(value, bool):
            raise ValueError(f"policy config key '{key}': expected true or false, got {value!r}")
        return value
    if expected_type is int:
        # bool is a subclass of int in Python; a `true` where a count belongs is a typo.
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"policy config key '{key}': expected an integer, got {value!r}")
        _check_range(key, value, bounds)
        return value
    if expected_type is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ValueError(f"policy config key '{key}': expected a finite number, got {value!r}")
        _check_range(key, value, bounds)
        return float(value)
    if expected_type is str:
        if not isinstance(value, str) or not value.strip():
            raise ValueError(f"policy config key '{key}': expected a non-empty string, got {value!r}")
        choices = bounds.get("choices")
        if choices is not None and value not in choices:
            raise ValueError(f"policy config key '{key}': {value!r} is not one of {list(choices)}")
        return value
    if expected_type == tuple[str, ...]:
        if not isinstance(value, list) or not all(isinstance(item, str) and item.strip() for item in value):
            raise ValueError(f"policy config key '{key}': expected a list of non-empty strings, got {value!r}")
        return tuple(value)
    raise TypeError(f"policy config key '{key}' has an unsupported field type {expected_type!r}")


def _check_range(key: str, value: float, bounds: Mapping[str, Any]) -> None:
    minimum, maximum = bounds.get("minimum"), bounds.get("maximum")
    if minimum is not None and value < minimum:
        raise ValueError(f"policy config key '{key}': {value!r} is below the minimum {minimum}")
    if maximum is not None and value > maximum:
        raise ValueError(f"policy config key '{key}': {value!r} is above the maximum {maximum}")


def _check_cross_field_rules(config: PolicyConfig) -> None:
    """Relations between thresholds that single-value ranges cannot express."""
    if config.metric.retrain_drop < config.metric.fine_tune_drop:
        raise ValueError("policy config key 'metric.retrain_drop': must be >= metric.fine_tune_drop "
                         f"({config.metric.retrain_drop} < {config.metric.fine_tune_drop})")
    if config.labels.min_batches_for_fine_tune > config.labels.min_batches_for_retrain:
        raise ValueError("policy config key 'labels.min_batches_for_fine_tune': must be <= "
                         f"labels.min_batches_for_retrain ({config.labels.min_batches_for_fine_tune} > "
                         f"{config.labels.min_batches_for_retrain})")
    if config.risk.high_risk_min_severity_score > config.drift.min_severity_score:
        raise ValueError("policy config key 'risk.high_risk_min_severity_score': high risk acts proactively, so it "
                         f"must be <= drift.min_severity_score ({config.risk.high_risk_min_severity_score} > "
                         f"{config.drift.min_severity_score})")
    if len(config.staleness.schedule_cron.split()) != 5:
        raise ValueError("policy config key 'staleness.schedule_cron': expected 5 cron fields "
                         f"(minute hour day month weekday), got {config.staleness.schedule_cron!r}")


# An error-rate rise the cost-aware trigger cannot see on one batch above this is a gross failure.
_LARGEST_USEFUL_NOISE_FLOOR = 0.1


def unreachable_thresholds(config: PolicyConfig, observed_batch_rows: Sequence[int]) -> tuple[str, ...]:
    """Warnings, in plain language, for thresholds the observed stream can never meet.

    ``observed_batch_rows`` are the labelled rows of each period seen so far (a backtest's batches, the
    live days). The label thresholds are in batches' worth, so they are met unless the whole stream is
    shorter than they ask; the avoidable-loss trigger cannot see an error excess on batches whose noise
    floor alone exceeds every row.

    >>> config = load_policy_config()
    >>> unreachable_thresholds(config, [2000] * 30)
    ()
    >>> print(unreachable_thresholds(config, [3])[0])  # doctest: +ELLIPSIS
    labels.min_batches_for_retrain: ...
    """
    rows = [int(r) for r in observed_batch_rows if r > 0]
    if not rows:
        return ("no labelled rows observed: no label threshold can be met",)
    labels, warnings = config.labels, []
    for key in ("min_batches_for_fine_tune", "min_batches_for_retrain", "accumulated_trigger_batches"):
        if getattr(labels, key) > len(rows):
            warnings.append(f"labels.{key}: asks for {getattr(labels, key):g} batches' worth of labels, but the "
                            f"observed stream has only {len(rows)} labelled batches")
    typical = statistics.median(rows)
    # The smallest error-rate rise a typical batch shows beyond its noise (at the widest, 50 % error).
    floor = config.avoidable_loss.noise_z * 0.5 / math.sqrt(typical)
    if floor > _LARGEST_USEFUL_NOISE_FLOOR:
        warnings.append(f"avoidable_loss.noise_z: a typical batch of {typical:g} rows hides error-rate rises below "
                        f"{floor:.0%}, so the cost-aware trigger sees only gross failures")
    return tuple(warnings)


def _thresholds_hash(raw: Mapping[str, Any]) -> str:
    """Hash of the thresholds only, so comments and formatting of the TOML file do not change it."""
    canonical = json.dumps(raw, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:10]
