"""Online mode on a real DuckDB warehouse: in-place versioned updates, scheduled gates, automatic restore."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import duckdb
import numpy as np
import pytest

from ct_assets.core.data import schema
from ct_assets.core.data.features import load_features
from ct_assets.core.ops.alerts import FileNotifier
from ct_assets.core.release.deployment import promote
from ct_assets.core.release.lineup import GateSettings
from ct_assets.core.release.registry import (
    ModelRecord,
    ensure_registry_tables,
    get_model,
    get_production,
    list_deployments,
    register_candidate,
)
from ct_assets.core.training.artifacts import load_model, save_model
from ct_assets.core.training.model import TrainingConfig, train_from_scratch
from ct_assets.core.training.online import (
    OnlineConfig,
    apply_online_update,
    chain_anchor,
    newly_labelled_features,
    online_update,
)
from ct_assets.core.training.preprocessing import MODEL_INPUTS
from ct_assets.simulation.config import SimulatorConfig
from ct_assets.simulation.landing import write_history
from ct_assets.simulation.scenarios import parse_timeline
from ct_assets_tests.builders import ingest_landed_days

DAYS = [f"2025-01-{i:02d}" for i in range(1, 9)]
TRAINING = TrainingConfig(hidden_sizes=(16,), epochs=2, seed=3)


@pytest.fixture(scope="module")
def landed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("online")
    config = SimulatorConfig(rows_per_day=1500, timeline=parse_timeline("stable@0"))
    write_history(root / "landing", root / "state", config, len(DAYS))
    return root


@pytest.fixture
def warehouse(landed: Path, tmp_path: Path):
    with duckdb.connect(str(tmp_path / "w.duckdb")) as con:
        ingest_landed_days(con, landed / "landing", tmp_path / "q", DAYS)
        ensure_registry_tables(con)
        frame = load_features(con, DAYS[0], DAYS[2], labelled_only=True)
        model = train_from_scratch(frame[list(MODEL_INPUTS)], frame[schema.FRAUD_LABEL_COLUMN], TRAINING)
        stored = save_model(tmp_path / "models", model, {})
        register_candidate(con, ModelRecord(model_id=stored.model_id, training_path="retrain",
                                            data_window_start=date.fromisoformat(DAYS[0]),
                                            data_window_end=date.fromisoformat(DAYS[2])))
        promote(con, stored.model_id, actor="test", reason="bootstrap")
        yield con, tmp_path, stored.model_id


def _apply(con, tmp_path: Path, day: str, online: OnlineConfig):
    return apply_online_update(con, tmp_path / "models", day, TRAINING, online, GateSettings(n_boot=50),
                               FileNotifier(tmp_path / "alerts.jsonl"))


def test_online_update_takes_bounded_steps_from_the_base_weights(warehouse):
    con, tmp_path, base_id = warehouse
    base = load_model(tmp_path / "models", base_id)
    batch = newly_labelled_features(con, DAYS[5])
    online = OnlineConfig(steps_per_batch=5)
    first = online_update(base, batch[list(MODEL_INPUTS)], batch[schema.FRAUD_LABEL_COLUMN], TRAINING, online)
    again = online_update(base, batch[list(MODEL_INPUTS)], batch[schema.FRAUD_LABEL_COLUMN], TRAINING, online)
    assert first.training_path == "online" and first.n_steps == 5
    assert first.preprocessor == base.preprocessor and first.n_replay_rows == 0
    assert all(np.array_equal(first.weights[k], again.weights[k]) for k in first.weights)
    assert any(not np.array_equal(first.weights[k], base.weights[k]) for k in first.weights)


def test_labels_arriving_on_a_day_are_those_joined_by_arrival_day(warehouse):
    con, _, _ = warehouse
    batch = newly_labelled_features(con, DAYS[5])
    expected = con.execute("SELECT count(DISTINCT event_id) FROM labels WHERE arrival_day = ?", [DAYS[5]]
                           ).fetchall()[0][0]
    assert len(batch) == expected > 0 and batch[schema.FRAUD_LABEL_COLUMN].notna().all()


def test_each_update_is_a_served_registered_version_and_a_rerun_is_a_no_op(warehouse):
    con, tmp_path, base_id = warehouse
    online = OnlineConfig(gate_every_updates=5)
    outcome = _apply(con, tmp_path, DAYS[4], online)
    assert outcome.status == "updated" and outcome.updates_since_anchor == 1
    record = get_model(con, outcome.model_id)
    assert (record.training_path, record.parent_model_id, record.trigger) == ("online", base_id, "online")
    assert record.metrics["labels_arrival_day"] == DAYS[4]
    assert get_production(con).model_id == outcome.model_id
    assert list_deployments(con)[-1].actor == "online"
    load_model(tmp_path / "models", outcome.model_id)  # a complete, hash-verified artifact
    rerun = _apply(con, tmp_path, DAYS[4], online)
    assert rerun.status == "skipped" and "already applied" in rerun.message
    assert get_production(con).model_id == outcome.model_id


def test_scheduled_gates_pass_and_move_the_anchor(warehouse):
    con, tmp_path, base_id = warehouse
    online = OnlineConfig(gate_every_updates=2, tolerance=0.05)
    first = _apply(con, tmp_path, DAYS[4], online)
    second = _apply(con, tmp_path, DAYS[5], online)
    assert first.gate_results == () and second.updates_since_anchor == 2
    assert second.status == "updated" and second.anchor_model_id == base_id
    assert {g.name for g in second.gate_results} == {"non_regression", "fairness", "calibration"}
    third = _apply(con, tmp_path, DAYS[6], online)
    assert third.anchor_model_id == second.model_id and third.updates_since_anchor == 1
    assert chain_anchor(con, get_model(con, third.model_id)) == (get_model(con, second.model_id), 1)


def test_a_degraded_chain_is_undone_to_its_anchor_with_an_alert(warehouse):
    con, tmp_path, base_id = warehouse
    # A learning rate this large wrecks the weights: the scheduled gate must catch it.
    reckless = OnlineConfig(gate_every_updates=1, learning_rate=5.0, steps_per_batch=40, tolerance=0.0)
    outcome = _apply(con, tmp_path, DAYS[4], reckless)
    assert outcome.status == "rolled_back" and outcome.model_id == base_id
    assert get_production(con).model_id == base_id
    degraded = [r for r in con.execute("SELECT model_id, status FROM model_registry WHERE training_path = 'online'"
                                       ).fetchall()]
    assert len(degraded) == 1 and degraded[0][1] == "rejected"
    assert list_deployments(con)[-1].action == "rollback"
    assert con.execute("SELECT kind FROM alerts").fetchall() == [("online_rollback",)]


def test_skips_without_a_production_model_or_with_too_few_rows(warehouse, tmp_path):
    con, path, _ = warehouse
    assert _apply(con, path, DAYS[4], OnlineConfig(min_batch_rows=10**6)).status == "skipped"
    with duckdb.connect(str(tmp_path / "empty.duckdb")) as empty:
        outcome = apply_online_update(empty, tmp_path / "m", DAYS[4], TRAINING, OnlineConfig(), GateSettings(),
                                      FileNotifier(tmp_path / "a.jsonl"))
    assert outcome.status == "skipped" and "no production model" in outcome.message


@pytest.mark.parametrize("field,value", [("steps_per_batch", 0), ("learning_rate", 0.0), ("tolerance", -1.0),
                                         ("gate_every_updates", 0)])
def test_bad_online_config_is_refused(field, value):
    with pytest.raises(ValueError, match=field):
        OnlineConfig(**{field: value})
