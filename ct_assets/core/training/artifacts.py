"""Content-addressed model store: ``<models_dir>/<model_id>/{model.safetensors, manifest.json}``.

``model_id`` is ``"m-" + sha256(model.safetensors)[:12]``, so the same weights always get the same id
and a stored model cannot silently change: :func:`load_model` re-hashes the weights and refuses a
mismatch. Weights are safetensors (via its numpy API: no torch, no pickle); everything else is JSON.
A model directory appears atomically: it is written under a dot-prefixed temporary name and renamed.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import uuid
from dataclasses import dataclass
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from ct_assets.core.ops.faults import ARTIFACT_WEIGHTS_WRITTEN, pause_point
from ct_assets.core.training.cost import ComputeCost
from ct_assets.core.training.model import TrainedModel, TrainingConfig
from ct_assets.core.training.preprocessing import Preprocessor

WEIGHTS_FILE = "model.safetensors"
MANIFEST_FILE = "manifest.json"
MANIFEST_VERSION = 1
_MODEL_ID = re.compile(r"^m-[0-9a-f]{12}$")
# Manifest keys the store derives from the model itself; callers may not override them.
_DERIVED_KEYS = frozenset({
    "manifest_version", "model_id", "weights_sha256", "weights_file", "preprocessor", "architecture",
    "hyperparameters", "training_path", "n_train_rows", "n_replay_rows", "n_steps", "final_train_loss",
    "compute_cost",
})


@dataclass(frozen=True, eq=False)
class StoredModel:
    """Where a model lives and what its manifest says; ``reused`` when the id already existed."""

    model_id: str
    path: Path
    weights_sha256: str
    manifest: dict[str, Any]
    reused: bool


def weights_bytes(weights: Mapping[str, np.ndarray]) -> bytes:
    """The safetensors serialisation of ``weights`` (deterministic for equal weights)."""
    from safetensors.numpy import save

    return save({name: np.ascontiguousarray(array) for name, array in weights.items()})


def weights_sha256(weights: Mapping[str, np.ndarray]) -> str:
    """Hex sha256 of :func:`weights_bytes` — the content hash a model id is derived from."""
    return hashlib.sha256(weights_bytes(weights)).hexdigest()


def model_id_for(sha256_hex: str) -> str:
    return "m-" + sha256_hex[:12]


def _check_model_id(model_id: str) -> None:
    # Also keeps ids from escaping models_dir ("../x").
    if not isinstance(model_id, str) or not _MODEL_ID.match(model_id):
        raise ValueError(f"invalid model id {model_id!r}: expected 'm-' followed by 12 hex digits")


def _json_default(value: Any) -> Any:
    if isinstance(value, (date, datetime)):
        return value.isoformat()
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def _write_synced(path: Path, data: bytes) -> None:
    with open(path, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def save_model(models_dir: str | Path, model: TrainedModel, manifest_fields: Mapping[str, Any]) -> StoredModel:
    """Store ``model`` under its content-derived id and return where it went.

    ``manifest_fields`` carries what the store cannot know, e.g. ``data_window`` ({"start", "end"}),
    ``metrics``, ``parent_model_id``, ``code_version`` (git sha), ``created_at`` (ISO string; now in UTC
    if absent), decision/trigger ids. It must be JSON-serialisable (dates and numpy scalars are
converted; NaN is refused) and may not override the
    keys derived from the model (id, hashes, preprocessor, architecture, hyperparameters, cost).
    If the id already exists with the same weights hash, the existing model is reused untouched.

    Example: ``stored = save_model("data/models", model, {"code_version": "abc123", "metrics": {"auc": 0.81}})``.
    """
    clashing = sorted(_DERIVED_KEYS & set(manifest_fields))
    if clashing:
        raise ValueError(f"manifest_fields may not set keys derived from the model: {clashing}")
    blob = weights_bytes(model.weights)
    digest = hashlib.sha256(blob).hexdigest()
    model_id = model_id_for(digest)
    manifest: dict[str, Any] = {
        "manifest_version": MANIFEST_VERSION,
        "model_id": model_id,
        "weights_file": WEIGHTS_FILE,
        "weights_sha256": digest,
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        **dict(manifest_fields),
        "training_path": model.training_path,
        "n_train_rows": model.n_train_rows,
        "n_replay_rows": model.n_replay_rows,
        "n_steps": model.n_steps,
        "final_train_loss": model.final_train_loss,
        "architecture": model.architecture,
        "hyperparameters": model.config.to_dict(),
        "preprocessor": model.preprocessor.to_dict(),
        "compute_cost": model.cost.to_dict(),
    }
    try:
        manifest_text = json.dumps(manifest, indent=2, sort_keys=True, allow_nan=False, default=_json_default)
    except (TypeError, ValueError) as error:
        raise ValueError(f"manifest for {model_id} is not plain JSON (no NaN/inf, no objects): {error}") from None
    manifest = json.loads(manifest_text)  # what the caller gets back is exactly what is on disk

    root = Path(models_dir)
    root.mkdir(parents=True, exist_ok=True)
    final_dir = root / model_id
    if final_dir.exists():
        return _reuse_existing(root, model_id, digest)
    temp_dir = root / f".tmp-{model_id}-{uuid.uuid4().hex}"
    try:
        temp_dir.mkdir()
        _write_synced(temp_dir / WEIGHTS_FILE, blob)
        pause_point(ARTIFACT_WEIGHTS_WRITTEN)
        _write_synced(temp_dir / MANIFEST_FILE, manifest_text.encode("utf-8"))
        _fsync_dir(temp_dir)
        try:
            os.rename(temp_dir, final_dir)
        except OSError:
            # Another writer stored the same id first (rename onto a non-empty dir fails).
            if final_dir.is_dir():
                return _reuse_existing(root, model_id, digest)
            raise
        _fsync_dir(root)
    finally:
        if temp_dir.exists():
            shutil.rmtree(temp_dir, ignore_errors=True)
    return StoredModel(model_id, final_dir, digest, manifest, reused=False)


def _reuse_existing(root: Path, model_id: str, digest: str) -> StoredModel:
    manifest = read_manifest(root, model_id)
    _verified_weights(root, model_id, manifest)
    if manifest["weights_sha256"] != digest:
        raise ValueError(f"model {model_id} already exists with different weights (hash prefix collision)")
    return StoredModel(model_id, root / model_id, digest, manifest, reused=True)


def read_manifest(models_dir: str | Path, model_id: str) -> dict[str, Any]:
    """The parsed manifest of ``model_id``; ``ValueError`` naming the model if absent or unreadable."""
    _check_model_id(model_id)
    path = Path(models_dir) / model_id / MANIFEST_FILE
    if not path.is_file():
        raise ValueError(f"model {model_id}: {MANIFEST_FILE} is missing under {path.parent}")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as error:
        raise ValueError(f"model {model_id}: unreadable {MANIFEST_FILE}: {error}") from None
    if not isinstance(manifest, dict) or manifest.get("model_id") != model_id:
        raise ValueError(f"model {model_id}: manifest names a different model ({manifest.get('model_id')!r})")
    return manifest


def _verified_weights(root: Path, model_id: str, manifest: dict[str, Any]) -> bytes:
    path = root / model_id / WEIGHTS_FILE
    if not path.is_file():
        raise ValueError(f"model {model_id}: {WEIGHTS_FILE} is missing under {path.parent}")
    blob = path.read_bytes()
    actual = hashlib.sha256(blob).hexdigest()
    if actual != manifest.get("weights_sha256") or model_id_for(actual) != model_id:
        raise ValueError(
            f"model {model_id}: weights sha256 {actual} does not match the manifest "
            f"({manifest.get('weights_sha256')}); refusing to load a tampered or corrupt model"
        )
    return blob


def load_model(models_dir: str | Path, model_id: str) -> TrainedModel:
    """Load and verify a stored model; ``ValueError`` naming it on missing files or a hash mismatch."""
    from safetensors.numpy import load

    root = Path(models_dir)
    manifest = read_manifest(root, model_id)
    blob = _verified_weights(root, model_id, manifest)
    try:
        return TrainedModel(
            weights=load(blob),
            preprocessor=Preprocessor.from_dict(manifest["preprocessor"]),
            config=TrainingConfig.from_dict(manifest["hyperparameters"]),
            training_path=manifest["training_path"],
            n_train_rows=int(manifest["n_train_rows"]),
            n_steps=int(manifest["n_steps"]),
            final_train_loss=float(manifest["final_train_loss"]),
            cost=ComputeCost.from_dict(manifest["compute_cost"]),
            n_replay_rows=int(manifest.get("n_replay_rows", 0)),
        )
    except KeyError as missing:
        raise ValueError(f"model {model_id}: manifest is missing {missing}") from None
