from datetime import date

import duckdb
import pytest

from ct_assets.core.data.features import load_features
from ct_assets.core.monitoring.drift.types import DriftConfig
from ct_assets.core.monitoring.reference import current_reference, monitor_day
from ct_assets.core.release.deployment import promote
from ct_assets.core.release.registry import (
    ModelRecord,
    ensure_registry_tables,
    register_candidate,
)
from ct_assets.core.training.artifacts import save_model
from ct_assets.core.training.model import TrainingConfig, train_from_scratch
from ct_assets.core.training.preprocessing import MODEL_INPUTS
from ct_assets.simulation.config import SimulatorConfig
from ct_assets.simulation.landing import write_history
from ct_assets.simulation.scenarios import parse_timeline
from ct_assets_tests.builders import ingest_landed_days

DAYS = [f"2025-01-0{i}" for i in range(1, 7)]


@pytest.fixture
def warehouse(tmp_path):
    config = SimulatorConfig(rows_per_day=800, timeline=parse_timeline("stable@0,sensor_hardware_change@5"))
    write_history(tmp_path / "landing", tmp_path / "state", config, len(DAYS))
    with duckdb.connect(str(tmp_path / "w.duckdb")) as con:
        ingest_landed_days(con, tmp_path / "landing", tmp_path / "q", DAYS)
        ensure_registry_tables(con)
        yield con, tmp_path


def _promote_model_on(con, models_dir, start, end, seed):
    frame = load_features(con, start, end, labelled_only=True)
    model = train_from_scratch(frame[list(MODEL_INPUTS)], frame["is_fraud"], TrainingConfig(epochs=1, seed=seed))
    stored = save_model(models_dir, model, {})
    register_candidate(con, ModelRecord(model_id=stored.model_id, training_path="retrain",
                                        data_window_start=date.fromisoformat(start),
                                        data_window_end=date.fromisoformat(end)))
    promote(con, stored.model_id, actor="test", reason="test")
    return stored.model_id


def test_reference_is_bootstrap_window_then_rebaselined_on_each_promotion(warehouse):
    con, tmp_path = warehouse
    bootstrap = current_reference(con, bootstrap_days=3)
    assert (bootstrap.model_id, str(bootstrap.start), str(bootstrap.end)) == (None, "2025-01-01", "2025-01-03")
    first = _promote_model_on(con, tmp_path / "models", "2025-01-01", "2025-01-02", seed=1)
    assert current_reference(con, 3).reference_id == f"{first}@2025-01-01..2025-01-02"
    second = _promote_model_on(con, tmp_path / "models", "2025-01-03", "2025-01-05", seed=2)
    reference = current_reference(con, 3)
    assert (reference.model_id, str(reference.start), str(reference.end)) == (second, "2025-01-03", "2025-01-05")


def test_drift_report_records_its_reference_and_model_and_is_idempotent(warehouse):
    con, tmp_path = warehouse
    model_id = _promote_model_on(con, tmp_path / "models", "2025-01-01", "2025-01-04", seed=1)
    config = DriftConfig(min_segment_rows=50, multivariate=False)
    first = monitor_day(con, tmp_path / "models", tmp_path / "reports", "2025-01-06", config, bootstrap_days=3)
    again = monitor_day(con, tmp_path / "models", tmp_path / "reports", "2025-01-06", config, bootstrap_days=3)
    assert first.report_id == again.report_id
    assert first.report.scope == "global" and first.plot_path.exists()
    rows = con.execute("SELECT report_id, reference_id, model_id FROM drift_reports").fetchall()
    assert rows == [(first.report_id, f"{model_id}@2025-01-01..2025-01-04", model_id)]
