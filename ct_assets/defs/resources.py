"""Resources: where files live, the DuckDB warehouse, and the pipeline's settings."""

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import dagster as dg
import duckdb
from dagster_duckdb import DuckDBResource

from ct_assets.core.data.layout import DATA_DIR_ENV, DUCKDB_PATH_ENV, DataLayout
from ct_assets.core.decision.policy_config import (
    DEFAULT_POLICY_PATH,
    PolicyConfig,
    load_policy_config,
)
from ct_assets.core.ops.alerts import Notifier, notifier_from_config
from ct_assets.core.release.lineup import GateSettings
from ct_assets.core.training.model import TrainingConfig
from ct_assets.core.training.online import OnlineConfig

# Every op that opens the DuckDB file runs in this pool (limit 1 in dagster.yaml): DuckDB allows
# one process per file, so reads and writes from different runs must take turns.
DUCKDB_POOL = "duckdb_warehouse"


class Warehouse(DuckDBResource):
    """dagster-duckdb's resource, closing the connection even when the step fails.

    (The base class closes only after a clean exit, so a failed step would keep the file locked
    for the rest of its process.)
    """

    @contextmanager
    def get_connection(self) -> Iterator[duckdb.DuckDBPyConnection]:
        with super().get_connection() as connection:
            try:
                yield connection
            finally:
                connection.close()


class CTStorage(dg.ConfigurableResource):
    """The data directory (its layout: core/data/layout.py)."""

    data_dir: str

    @property
    def layout(self) -> DataLayout:
        return DataLayout.from_root(self.data_dir)

    @property
    def landing_dir(self) -> Path:
        return self.layout.landing_dir

    @property
    def quarantine_dir(self) -> Path:
        return self.layout.quarantine_dir

    @property
    def models_dir(self) -> Path:
        return self.layout.models_dir

    @property
    def reports_dir(self) -> Path:
        return self.layout.reports_dir

    @property
    def snapshots_dir(self) -> Path:
        return self.layout.snapshots_dir

    @property
    def backtest_dir(self) -> Path:
        return self.layout.backtest_dir


class CTSettings(dg.ConfigurableResource):
    """Thresholds of the data-quality checks, the training windows, the gates and the policy file."""

    max_quarantine_share: float = 0.05
    min_rows_per_day: int = 100
    row_count_tolerance: float = 0.5  # today within +-50% of the recent median
    min_label_rate: float = 0.01
    max_label_rate: float = 0.5
    reference_days: int = 7  # reference window before the first model exists
    drift_warn_severity: float = 0.3
    drift_block_severity: float = 1.01  # > 1: never blocks; e.g. 0.9 to hold extreme shifts for a human
    training_window_days: int = 14
    fine_tune_window_days: int = 4
    min_training_rows: int = 1000
    training_epochs: int = 8
    training_seed: int = 7
    gate_metric: str = "auc"
    # "non_inferiority" (not worse than production beyond what the holdout resolves) or "superiority"
    # (at least gate_margin better, relative when gate_relative); see lineup.GateSettings.
    gate_holdout_mode: str = "non_inferiority"
    gate_margin: float = 0.01
    gate_relative: bool = True
    risk_tier: str = "low"  # "high": rigorous validation and human approval before promotion
    policy_path: str = str(DEFAULT_POLICY_PATH)
    # Where alerts go: "log", "file" or "webhook". The file path / webhook URL is a secret: pass it as
    # dg.EnvVar("CT_NOTIFIER_TARGET") (default_resources does), never as a literal in code or config.
    notifier_kind: str = "log"
    notifier_target: str = ""
    # The multivariate MMD test is the only code using alibi-detect (Business Source License): a team
    # without a licence for production use switches it off here.
    drift_multivariate: bool = True
    # Online mode (off by default): the serving model also learns a few steps from each day's labels.
    online_enabled: bool = False
    online_steps_per_batch: int = 20
    online_learning_rate: float = 2e-4
    online_gate_every_updates: int = 3

    def policy(self) -> PolicyConfig:
        return load_policy_config(self.policy_path)

    def notifier(self) -> Notifier:
        return notifier_from_config(self.notifier_kind, self.notifier_target or None)

    def online_config(self) -> OnlineConfig:
        return OnlineConfig(enabled=self.online_enabled, steps_per_batch=self.online_steps_per_batch,
                            learning_rate=self.online_learning_rate,
                            gate_every_updates=self.online_gate_every_updates)

    def training_config(self) -> TrainingConfig:
        return TrainingConfig(epochs=self.training_epochs, seed=self.training_seed)

    def gate_settings(self) -> GateSettings:
        strict = self.risk_tier == "high"
        return GateSettings(metric=self.gate_metric, holdout_mode=self.gate_holdout_mode, margin=self.gate_margin,
                            relative=self.gate_relative,
                            # High-stakes applications: tighter fairness and calibration tolerances. The
                            # gap between groups is measured on a few hundred holdout rows per group, so
                            # its tolerance sits above that sampling noise.
                            fairness_tolerance=0.01 if strict else 0.02,
                            max_gap_widening=0.03 if strict else 0.05,
                            fairness_max_gap=0.03 if strict else 0.05,
                            max_ece_increase=0.01 if strict else 0.02)


def default_resources() -> dict[str, object]:
    """Resources for `dagster dev`: paths come from the environment set by `make run`."""
    return {
        # A memory cap keeps a huge landing file's ingest flat (DuckDB spills to disk past it).
        "duckdb": Warehouse(database=dg.EnvVar(DUCKDB_PATH_ENV),
                            connection_config={"memory_limit": os.environ.get("CT_DUCKDB_MEMORY_LIMIT", "2GB")}),
        "storage": CTStorage(data_dir=dg.EnvVar(DATA_DIR_ENV)),
        "settings": CTSettings(
            online_enabled=os.environ.get("CT_ONLINE_MODE", "0") == "1",
            notifier_kind=os.environ.get("CT_NOTIFIER_KIND", "log"),
            # Resolved at run time, shown masked in the UI; optional, so only bound when set.
            notifier_target=dg.EnvVar("CT_NOTIFIER_TARGET") if "CT_NOTIFIER_TARGET" in os.environ else "",
        ),
    }
