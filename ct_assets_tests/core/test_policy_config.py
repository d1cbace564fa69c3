"""Tests of loading and validating ct_assets/policy.toml into a PolicyConfig."""

from __future__ import annotations

import copy
import dataclasses
import tomllib
from pathlib import Path
from typing import Any

import pytest

from ct_assets.core.decision.policy_config import (
    DEFAULT_POLICY_PATH,
    PolicyConfig,
    load_policy_config,
    parse_policy_config,
)


def shipped_raw() -> dict[str, Any]:
    return tomllib.loads(DEFAULT_POLICY_PATH.read_text(encoding="utf-8"))


def with_value(dotted_key: str, value: Any) -> dict[str, Any]:
    raw = copy.deepcopy(shipped_raw())
    *tables, key = dotted_key.split(".")
    target = raw
    for table in tables:
        target = target[table]
    target[key] = value
    return raw


def without_key(dotted_key: str) -> dict[str, Any]:
    raw = copy.deepcopy(shipped_raw())
    *tables, key = dotted_key.split(".")
    target = raw
    for table in tables:
        target = target[table]
    del target[key]
    return raw


def leaf_keys(table: dict[str, Any], prefix: str = "") -> list[str]:
    keys = []
    for key, value in table.items():
        if isinstance(value, dict):
            keys.extend(leaf_keys(value, f"{prefix}{key}."))
        else:
            keys.append(f"{prefix}{key}")
    return keys


SHIPPED_LEAF_KEYS = leaf_keys(shipped_raw())


def test_shipped_policy_loads_with_its_documented_values() -> None:
    config = load_policy_config()
    assert isinstance(config, PolicyConfig)
    assert config.version == "1"
    assert config.drift.min_severity_score == 0.3
    assert config.labels.when_scarce_for_retrain == "fine_tune"
    assert config.technical_debt.max_consecutive_fine_tunes == 3
    assert isinstance(config.cost.budget_per_period, float)
    assert config.jurisdiction.signoff_regions == ()
    assert config.risk.high_risk_requires_approval is True
    assert config.policy_version.startswith("1+") and len(config.policy_version) == len("1+") + 10


def test_shipped_policy_has_every_key_documented_by_a_comment() -> None:
    lines = DEFAULT_POLICY_PATH.read_text(encoding="utf-8").splitlines()
    for key in SHIPPED_LEAF_KEYS:
        name = key.split(".")[-1]
        index = next(i for i, line in enumerate(lines) if line.startswith(f"{name} ="))
        assert lines[index - 1].startswith("#"), f"{key} has no comment above it"


def test_config_is_frozen() -> None:
    config = load_policy_config()
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.drift.min_severity_score = 0.9  # type: ignore[misc]


@pytest.mark.parametrize("dotted_key", SHIPPED_LEAF_KEYS + ["drift", "labels"])
def test_missing_key_raises_naming_it(dotted_key: str) -> None:
    with pytest.raises(ValueError, match=f"missing key '{dotted_key}'"):
        parse_policy_config(without_key(dotted_key))


@pytest.mark.parametrize("dotted_key", ["retrain_threshold", "drift.min_severity", "labels.min_rows"])
def test_unknown_key_raises_naming_it(dotted_key: str) -> None:
    with pytest.raises(ValueError, match=f"unknown key '{dotted_key}'"):
        parse_policy_config(with_value(dotted_key, 1))


@pytest.mark.parametrize(("dotted_key", "value"), [
    ("version", 3),
    ("version", ""),
    ("drift", 0.3),
    ("drift.min_severity_score", "high"),
    ("drift.min_severity_score", True),
    ("labels.accumulated_trigger_batches", "ten"),
    ("labels.accumulated_trigger_batches", True),
    ("labels.when_scarce_for_retrain", 1),
    ("risk.high_risk_requires_approval", "yes"),
    ("risk.high_risk_requires_approval", 1),
    ("jurisdiction.signoff_regions", "south"),
    ("jurisdiction.signoff_regions", [1, 2]),
    ("cost.unit", 5),
])
def test_wrong_type_raises_naming_the_key(dotted_key: str, value: Any) -> None:
    with pytest.raises(ValueError, match=f"'{dotted_key}'"):
        parse_policy_config(with_value(dotted_key, value))


@pytest.mark.parametrize(("dotted_key", "value"), [
    ("drift.min_severity_score", 1.5),
    ("drift.min_severity_score", -0.1),
    ("drift.min_severity_score", float("nan")),
    ("complaints.min_rate_ratio", 0.5),
    ("technical_debt.max_consecutive_fine_tunes", 0),
    ("labels.min_batches_for_fine_tune", -1.0),
    ("avoidable_loss.price_per_error", -0.1),
    ("labels.min_coverage_for_retrain", 1.01),
    ("labels.when_scarce_for_retrain", "retrain"),
    ("cost.unit", "dollars"),
    ("cost.budget_per_period", -1.0),
    ("cost.default_retrain_cost", float("inf")),
    ("staleness.max_age_days", -1),
])
def test_out_of_range_value_raises_naming_the_key(dotted_key: str, value: Any) -> None:
    with pytest.raises(ValueError, match=f"'{dotted_key}'"):
        parse_policy_config(with_value(dotted_key, value))


@pytest.mark.parametrize(("dotted_key", "value"), [
    ("metric.retrain_drop", 0.01),  # below metric.fine_tune_drop 0.02
    ("labels.min_batches_for_fine_tune", 6.0),  # above labels.min_batches_for_retrain 2.5
    ("risk.high_risk_min_severity_score", 0.5),  # above drift.min_severity_score 0.3
    ("staleness.schedule_cron", "0 3 * *"),
])
def test_inconsistent_thresholds_raise_naming_the_key(dotted_key: str, value: Any) -> None:
    with pytest.raises(ValueError, match=f"'{dotted_key}'"):
        parse_policy_config(with_value(dotted_key, value))


def test_malformed_toml_file_raises_value_error(tmp_path: Path) -> None:
    path = tmp_path / "policy.toml"
    path.write_text("version = \"1\"\n[drift\nmin_severity_score = 0.3\n", encoding="utf-8")
    with pytest.raises(ValueError, match="not valid TOML"):
        load_policy_config(path)


def test_policy_version_ignores_comments_but_tracks_every_threshold(tmp_path: Path) -> None:
    shipped_text = DEFAULT_POLICY_PATH.read_text(encoding="utf-8")
    shipped = load_policy_config()

    recommented = tmp_path / "recommented.toml"
    recommented.write_text("# a new comment\n" + shipped_text.replace("# Falling", "#   Falling"), encoding="utf-8")
    assert load_policy_config(recommented).policy_version == shipped.policy_version

    changed = tmp_path / "changed.toml"
    changed.write_text(shipped_text.replace("max_consecutive_fine_tunes = 3", "max_consecutive_fine_tunes = 5"),
                       encoding="utf-8")
    changed_config = load_policy_config(changed)
    assert changed_config.technical_debt.max_consecutive_fine_tunes == 5
    assert changed_config.version == shipped.version
    assert changed_config.policy_version != shipped.policy_version


def test_non_mapping_input_is_rejected() -> None:
    with pytest.raises(ValueError, match="mapping"):
        parse_policy_config(["version", "1"])  # type: ignore[arg-type]


def test_unreachable_thresholds_warn_on_the_observed_stream() -> None:
    from ct_assets.core.decision.policy_config import load_policy_config, unreachable_thresholds

    config = load_policy_config()
    assert unreachable_thresholds(config, [200] * 40) == ()
    assert unreachable_thresholds(config, [100_000] * 40) == ()
    short = unreachable_thresholds(config, [200] * 5)
    assert [warning.split(":")[0] for warning in short] == ["labels.accumulated_trigger_batches"]
    tiny = unreachable_thresholds(config, [3] * 40)
    assert [warning.split(":")[0] for warning in tiny] == ["avoidable_loss.noise_z"]
