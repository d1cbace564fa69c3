"""The data directory's layout: every path the pipeline, the `ct` command and `ct doctor` use.

One root (``CT_DATA_DIR``) holds the landing zone, quarantine, model artifacts, reports, the
analyst snapshot, backtest plots and the simulator's state. The warehouse and the Dagster home
default to files inside it and may be moved elsewhere (``CT_DUCKDB_PATH``, ``DAGSTER_HOME``).

>>> layout = DataLayout.from_root("/srv/ct")
>>> str(layout.models_dir), str(layout.snapshot_path), str(layout.warehouse_path)
('/srv/ct/models', '/srv/ct/snapshots/latest.duckdb', '/srv/ct/warehouse.duckdb')
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

DATA_DIR_ENV = "CT_DATA_DIR"
DUCKDB_PATH_ENV = "CT_DUCKDB_PATH"
DAGSTER_HOME_ENV = "DAGSTER_HOME"
SNAPSHOT_NAME = "latest.duckdb"
WAREHOUSE_NAME = "warehouse.duckdb"


@dataclass(frozen=True)
class DataLayout:
    """Where each kind of file lives under one data directory."""

    root: Path
    warehouse_path: Path
    dagster_home: Path

    @classmethod
    def from_root(cls, root: str | Path, warehouse_path: str | Path | None = None,
                  dagster_home: str | Path | None = None) -> DataLayout:
        """The layout under ``root``; the warehouse and the Dagster home default to files inside it."""
        root = Path(root)
        return cls(root, Path(warehouse_path) if warehouse_path else root / WAREHOUSE_NAME,
                   Path(dagster_home) if dagster_home else root / "dagster_home")

    @classmethod
    def from_environment(cls, default_root: str | Path) -> DataLayout:
        """The layout the environment names (``CT_DATA_DIR``, ``CT_DUCKDB_PATH``, ``DAGSTER_HOME``)."""
        root = Path(os.environ.get(DATA_DIR_ENV, default_root)).resolve()
        home = os.environ.get(DAGSTER_HOME_ENV)
        return cls.from_root(root, os.environ.get(DUCKDB_PATH_ENV), Path(home).resolve() if home else None)

    def environment(self) -> dict[str, str]:
        """The variables that point a `dagster` process (and its runs) at this layout."""
        return {DAGSTER_HOME_ENV: str(self.dagster_home), DATA_DIR_ENV: str(self.root),
                DUCKDB_PATH_ENV: str(self.warehouse_path)}

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

    @property
    def snapshot_path(self) -> Path:
        """The analyst snapshot, replaced atomically (core/ops/snapshots.py)."""
        return self.snapshots_dir / SNAPSHOT_NAME

    @property
    def backtest_dir(self) -> Path:
        return self.root / "backtest"

    @property
    def policy_proposals_dir(self) -> Path:
        """Policy files `policy_calibration` proposes; applied only when a person copies one over the policy."""
        return self.root / "policy_proposals"

    @property
    def simulator_state_dir(self) -> Path:
        return self.root / "simulator_state"
