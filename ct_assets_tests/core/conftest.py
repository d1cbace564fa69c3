"""Fixtures shared by the pure-core tests."""

from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest

from ct_assets.core.decision.policy_config import PolicyConfig, load_policy_config


@pytest.fixture()
def config() -> PolicyConfig:
    """The shipped policy.toml."""
    return load_policy_config()


@pytest.fixture()
def con(tmp_path: Path) -> Iterator[duckdb.DuckDBPyConnection]:
    """A connection to a new, empty DuckDB warehouse file in the test's tmp dir (a module that needs its
    tables overrides this fixture and requests it by the same name)."""
    with duckdb.connect(str(tmp_path / "warehouse.duckdb")) as connection:
        yield connection
