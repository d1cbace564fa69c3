import json
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ct_assets.core.training.artifacts import (
    MANIFEST_FILE,
    WEIGHTS_FILE,
    load_model,
    model_id_for,
    read_manifest,
    save_model,
    weights_sha256,
)
from ct_assets.core.training.cost import DETERMINISTIC_KEYS, ComputeCost
from ct_assets.core.training.model import (
    TrainedModel,
    TrainingConfig,
    predict_proba,
    train_from_scratch,
)
from ct_assets_tests.builders import random_model_inputs


def small_frame(n_rows: int, seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    frame = random_model_inputs(rng, n_rows)
    labels = (frame["discount"] + rng.normal(scale=0.5, size=n_rows) > 0.8).astype(np.int64).to_numpy()
    return frame, labels


@pytest.fixture(scope="module")
def model() -> TrainedModel:
    features, labels = small_frame(600, seed=0)
    return train_from_scratch(features, labels, TrainingConfig(hidden_sizes=(8,), epochs=2, device="cpu"))


MANIFEST_FIELDS = {
    "data_window": {"start": date(2026, 1, 1), "end": date(2026, 1, 14)},
    "metrics": {"holdout_auc": 0.81},
    "parent_model_id": None,
    "code_version": "0123abcd",
}


def test_round_trip_preserves_weights_preprocessor_and_predictions(tmp_path: Path, model: TrainedModel) -> None:
    stored = save_model(tmp_path, model, MANIFEST_FIELDS)
    digest = weights_sha256(model.weights)
    assert stored.model_id == model_id_for(digest) == "m-" + digest[:12]
    assert not stored.reused
    assert sorted(p.name for p in stored.path.iterdir()) == [MANIFEST_FILE, WEIGHTS_FILE]

    manifest = json.loads((stored.path / MANIFEST_FILE).read_text())
    assert manifest == stored.manifest == read_manifest(tmp_path, stored.model_id)
    assert manifest["weights_sha256"] == digest
    assert manifest["data_window"] == {"start": "2026-01-01", "end": "2026-01-14"}
    assert manifest["code_version"] == "0123abcd"
    assert manifest["architecture"]["hidden_sizes"] == [8]
    assert manifest["compute_cost"]["device"] == "cpu"
    assert manifest["hyperparameters"]["epochs"] == 2

    loaded = load_model(tmp_path, stored.model_id)
    assert loaded.preprocessor == model.preprocessor
    assert loaded.config == model.config
    assert loaded.cost == model.cost
    assert all(np.array_equal(loaded.weights[k], model.weights[k]) for k in model.weights)
    features, _ = small_frame(50, seed=1)
    assert np.array_equal(predict_proba(loaded, features), predict_proba(model, features))


def test_saving_the_same_weights_again_reuses_the_stored_model(tmp_path: Path, model: TrainedModel) -> None:
    first = save_model(tmp_path, model, MANIFEST_FIELDS)
    second = save_model(tmp_path, model, {**MANIFEST_FIELDS, "code_version": "other"})
    assert second.reused and second.model_id == first.model_id
    assert second.manifest["code_version"] == "0123abcd"  # the stored model is left untouched
    assert [p.name for p in tmp_path.iterdir()] == [first.model_id]


def test_tampered_weights_are_refused(tmp_path: Path, model: TrainedModel) -> None:
    stored = save_model(tmp_path, model, MANIFEST_FIELDS)
    weights_path = stored.path / WEIGHTS_FILE
    blob = bytearray(weights_path.read_bytes())
    blob[-1] ^= 0x01  # flip one bit of the last weight
    weights_path.write_bytes(bytes(blob))
    with pytest.raises(ValueError, match=f"model {stored.model_id}.*does not match"):
        load_model(tmp_path, stored.model_id)


def test_missing_files_and_bad_ids_are_refused(tmp_path: Path, model: TrainedModel) -> None:
    stored = save_model(tmp_path, model, MANIFEST_FIELDS)
    with pytest.raises(ValueError, match="m-000000000000.*missing"):
        load_model(tmp_path, "m-000000000000")
    with pytest.raises(ValueError, match="invalid model id"):
        load_model(tmp_path, "../etc")
    (stored.path / WEIGHTS_FILE).unlink()
    with pytest.raises(ValueError, match=f"{stored.model_id}.*{WEIGHTS_FILE} is missing"):
        load_model(tmp_path, stored.model_id)


def test_a_failed_write_leaves_no_partial_model_directory(tmp_path: Path, model: TrainedModel) -> None:
    model_id = model_id_for(weights_sha256(model.weights))
    # A dangling symlink on the model's path: the files are written to the temporary directory,
    # then the final rename fails.
    (tmp_path / model_id).symlink_to(tmp_path / "nowhere")
    with pytest.raises(OSError):
        save_model(tmp_path, model, MANIFEST_FIELDS)
    assert [p.name for p in tmp_path.iterdir()] == [model_id]  # no .tmp-* directory left behind
    assert not (tmp_path / model_id).is_dir()
    with pytest.raises(ValueError, match="missing"):
        load_model(tmp_path, model_id)


def test_an_existing_non_model_on_the_path_is_refused_not_overwritten(tmp_path: Path, model: TrainedModel) -> None:
    model_id = model_id_for(weights_sha256(model.weights))
    (tmp_path / model_id).mkdir()
    (tmp_path / model_id / "notes.txt").write_text("not a model")
    with pytest.raises(ValueError, match=f"{model_id}.*missing"):
        save_model(tmp_path, model, MANIFEST_FIELDS)
    assert [p.name for p in (tmp_path / model_id).iterdir()] == ["notes.txt"]
    assert [p.name for p in tmp_path.iterdir()] == [model_id]


def test_manifest_fields_must_be_plain_json_and_not_override_derived_keys(tmp_path: Path, model: TrainedModel) -> None:
    with pytest.raises(ValueError, match="derived from the model.*weights_sha256"):
        save_model(tmp_path, model, {"weights_sha256": "forged"})
    with pytest.raises(ValueError, match="not plain JSON"):
        save_model(tmp_path, model, {"metrics": {"auc": float("nan")}})
    with pytest.raises(ValueError, match="not plain JSON"):
        save_model(tmp_path, model, {"data_window": object()})
    assert list(tmp_path.iterdir()) == []


def test_a_manifest_written_before_the_deterministic_counts_loads_without_them(tmp_path: Path,
                                                                               model: TrainedModel) -> None:
    stored = save_model(tmp_path, model, MANIFEST_FIELDS)
    assert stored.manifest["compute_cost"]["examples_processed"] == model.cost.examples_processed > 0
    path = stored.path / MANIFEST_FILE
    manifest = json.loads(path.read_text())
    for key in DETERMINISTIC_KEYS:
        del manifest["compute_cost"][key]
    path.write_text(json.dumps(manifest))
    loaded = load_model(tmp_path, stored.model_id)
    assert (loaded.cost.examples_processed, loaded.cost.n_parameters, loaded.cost.train_gflops) == (None, None, None)
    assert loaded.cost.cpu_seconds == model.cost.cpu_seconds


def test_compute_cost_keys_are_checked() -> None:
    full = {"wall_seconds": 1.0, "cpu_seconds": 1.0, "device": "cpu", "energy_kwh": 0.0, "co2_kg": 0.0,
            "estimation_method": "estimate", "examples_processed": 1000, "n_parameters": 50}
    assert ComputeCost.from_dict(full).train_gflops == pytest.approx(6 * 50 * 1000 / 1e9)
    with pytest.raises(ValueError, match="both or none"):
        ComputeCost.from_dict({k: v for k, v in full.items() if k != "n_parameters"})
    with pytest.raises(ValueError, match="both or none"):
        ComputeCost.from_dict({**full, "flops": 1.0})
    with pytest.raises(ValueError, match="both or none"):
        ComputeCost.from_dict({k: v for k, v in full.items() if k != "device"})
