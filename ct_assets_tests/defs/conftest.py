"""Real Dagster instance, real DuckDB file and real data directory for every shell test."""

from pathlib import Path

import dagster as dg
import pytest
from dagster_duckdb import DuckDBResource

from ct_assets.defs.build import build_definitions
from ct_assets.defs.resources import CTSettings, CTStorage


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


@pytest.fixture
def resources(data_dir: Path) -> dict[str, object]:
    data_dir.mkdir(parents=True, exist_ok=True)
    return {
        "duckdb": DuckDBResource(database=str(data_dir / "warehouse.duckdb")),
        "storage": CTStorage(data_dir=str(data_dir)),
        "settings": CTSettings(min_rows_per_day=10, min_training_rows=200, training_epochs=3),
    }


@pytest.fixture
def defs(resources) -> dg.Definitions:
    return build_definitions(resources)


@pytest.fixture
def instance():
    with dg.instance_for_test() as test_instance:
        yield test_instance
