"""Real Dagster instance, real DuckDB file and real data directory for every shell test."""

from pathlib import Path

import dagster as dg
import pytest

from ct_assets.core.data.layout import DataLayout
from ct_assets.core.decision.policy_config import DEFAULT_POLICY_PATH
from ct_assets.defs.build import build_definitions
from ct_assets.defs.resources import CTSettings, CTStorage, Warehouse


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


# Tests stream 1,500 orders a day and need fewer labels. The end-to-end scenarios exercise each evidence
# path, gate and rollback as soon as its evidence fires ("on_evidence"); the cost-aware timing is
# table-tested in core/test_policy.py and measured by the backtest (its 0/1 error count is blind on the
# shop's rare fraud class, see README "Backtesting the policy").
TEST_POLICY_OVERRIDES = {"min_batches_for_retrain = 2.5": "min_batches_for_retrain = 2.0",
                         'timing = "cost_aware"': 'timing = "on_evidence"'}


@pytest.fixture
def policy_path(tmp_path: Path) -> Path:
    text = DEFAULT_POLICY_PATH.read_text()
    for old, new in TEST_POLICY_OVERRIDES.items():
        assert old in text, f"policy.toml no longer has {old!r}"
        text = text.replace(old, new)
    path = tmp_path / "policy.toml"
    path.write_text(text)
    return path


@pytest.fixture
def settings(policy_path: Path) -> CTSettings:
    return CTSettings(min_rows_per_day=10, min_training_rows=200, training_epochs=3, policy_path=str(policy_path))


@pytest.fixture
def resources(data_dir: Path, settings: CTSettings) -> dict[str, object]:
    data_dir.mkdir(parents=True, exist_ok=True)
    return {
        "duckdb": Warehouse(database=str(DataLayout.from_root(data_dir).warehouse_path)),
        "storage": CTStorage(data_dir=str(data_dir)),
        "settings": settings,
    }


@pytest.fixture
def defs(resources) -> dg.Definitions:
    return build_definitions(resources)


@pytest.fixture
def instance():
    with dg.instance_for_test() as test_instance:
        yield test_instance
