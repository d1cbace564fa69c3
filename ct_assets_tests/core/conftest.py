"""Fixtures shared by the pure-core tests."""

import pytest

from ct_assets.core.decision.policy_config import PolicyConfig, load_policy_config


@pytest.fixture()
def config() -> PolicyConfig:
    """The shipped policy.toml."""
    return load_policy_config()
