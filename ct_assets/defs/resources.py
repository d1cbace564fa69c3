"""Resources: where files live, the DuckDB warehouse, and the pipeline's settings."""


from pathlib import Path

import dagster as dg
from dagster_duckdb import DuckDBResource

# Every op that opens the DuckDB file runs in this pool (limit 1 in dagster.yaml): DuckDB allows
# one process per file, so reads and writes from different runs must take turns.
DUCKDB_POOL = "duckdb_warehouse"


class CTStorage(dg.ConfigurableResource):
    """The data directory: landing zone, quarantine, model artifacts, reports and snapshots."""

    data_dir: str

    @property
    def root(self) -> Path:
        return Path(self.data_dir)

    @property
    def landing_dir(self) -> Path:
        return self.root / "landing"

    @property
    def quarantine_dir(self) -> Path:
        return self.root / "quarantine"

    @property
    def models_dir(self) -> Path:
        return self.root / "models"

    @property
    def reports_dir(self) -> Path:
        return self.root / "reports"

    @property
    def snapshots_dir(self) -> Path:
        return self.root / "snapshots"


class CTSettings(dg.ConfigurableResource):
    """Thresholds of the data-quality checks, triggers, training window and promotion gate."""

    max_quarantine_share: float = 0.05
    min_rows_per_day: int = 100
    row_count_tolerance: float = 0.5  # today within +-50% of the recent median
    min_label_rate: float = 0.01
    max_label_rate: float = 0.5
    reference_days: int = 7
    drift_trigger_severity: float = 0.5
    max_model_age_days: int = 14
    training_window_days: int = 14
    min_training_rows: int = 1000
    training_epochs: int = 8
    training_seed: int = 7
    gate_metric: str = "auc"
    gate_margin: float = 0.01
    gate_relative: bool = True


def default_resources() -> dict[str, object]:
    """Resources for `dagster dev`: paths come from the environment set by `make run`."""
    return {
        "duckdb": DuckDBResource(database=dg.EnvVar("CT_DUCKDB_PATH")),
        "storage": CTStorage(data_dir=dg.EnvVar("CT_DATA_DIR")),
        "settings": CTSettings(),
    }
