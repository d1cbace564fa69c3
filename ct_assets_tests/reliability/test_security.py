"""Weights only as safetensors, never unpickled; artifacts addressed (and verified) by content hash."""

from __future__ import annotations

import ast
import hashlib
import json
import struct
from pathlib import Path

import pytest

from ct_assets.core.training.artifacts import MANIFEST_FILE, WEIGHTS_FILE, load_model, save_model
from ct_assets.core.training.model import TrainedModel

PACKAGE = Path(__file__).resolve().parents[2] / "ct_assets"
# Modules that deserialize arbitrary Python objects (code execution on load).
UNSAFE_MODULES = {"pickle", "cPickle", "_pickle", "dill", "cloudpickle", "joblib", "shelve", "marshal", "jsonpickle"}
UNSAFE_CALLS = {"read_pickle", "to_pickle"}


def _sources() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def unsafe_uses(source: str) -> list[str]:
    """Imports of unpickling modules, pandas pickle calls, torch.load without weights_only=True and
    numpy loads with allow_pickle=True in ``source``."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [f"import {a.name}" for a in node.names if a.name.split(".")[0] in UNSAFE_MODULES]
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] in UNSAFE_MODULES:
            found.append(f"from {node.module} import ...")
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            keywords = {k.arg: k.value for k in node.keywords}
            owner = node.func.value.id if isinstance(node.func.value, ast.Name) else ""
            if node.func.attr in UNSAFE_CALLS:
                found.append(f"{node.func.attr}(...)")
            elif owner == "torch" and node.func.attr == "load":
                weights_only = keywords.get("weights_only")
                if not (isinstance(weights_only, ast.Constant) and weights_only.value is True):
                    found.append("torch.load(...) without weights_only=True")
            elif owner in ("np", "numpy") and node.func.attr == "load":
                allow = keywords.get("allow_pickle")
                if isinstance(allow, ast.Constant) and allow.value is True:
                    found.append("np.load(..., allow_pickle=True)")
    return found


def test_the_scanner_finds_what_it_looks_for() -> None:
    bad = ("import pickle\nfrom joblib import load\nimport torch\ntorch.load(path)\n"
           "torch.load(path, weights_only=False)\nimport numpy as np\nnp.load(p, allow_pickle=True)\n"
           "import pandas as pd\npd.read_pickle(p)\n")
    assert len(unsafe_uses(bad)) == 6
    assert unsafe_uses("import torch\ntorch.load(path, weights_only=True)\nimport numpy as np\nnp.load(p)\n") == []


def test_no_pickle_and_no_unsafe_torch_load_anywhere_in_the_package() -> None:
    sources = _sources()
    assert len(sources) > 20  # the walk really covers the package
    offenders = {str(p.relative_to(PACKAGE)): uses for p in sources if (uses := unsafe_uses(p.read_text()))}
    assert offenders == {}


def test_a_stored_model_is_only_safetensors_and_json(tmp_path: Path, small_model: TrainedModel) -> None:
    stored = save_model(tmp_path, small_model, {})
    assert sorted(p.name for p in stored.path.iterdir()) == [MANIFEST_FILE, WEIGHTS_FILE]
    blob = (stored.path / WEIGHTS_FILE).read_bytes()
    # safetensors: an 8-byte little-endian header length, a JSON header, raw tensor bytes. No objects.
    (header_length,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8:8 + header_length])
    assert set(small_model.weights) <= set(header)
    assert b"\x80\x04\x95" not in blob[:16]  # no pickle protocol-4 preamble
    json.loads((stored.path / MANIFEST_FILE).read_text())


def test_the_model_id_is_the_content_hash_of_the_weights(tmp_path: Path, two_models) -> None:
    stored = [save_model(tmp_path, model, {}) for model in two_models]
    for model in stored:
        digest = hashlib.sha256((model.path / WEIGHTS_FILE).read_bytes()).hexdigest()
        assert model.model_id == "m-" + digest[:12] and model.weights_sha256 == digest
    assert stored[0].model_id != stored[1].model_id
    assert save_model(tmp_path, two_models[0], {"code_version": "other"}).model_id == stored[0].model_id


@pytest.mark.parametrize("where", ["header", "middle", "last byte"])
def test_changing_one_byte_of_the_weights_makes_load_fail(tmp_path: Path, small_model: TrainedModel,
                                                           where: str) -> None:
    stored = save_model(tmp_path, small_model, {})
    path = stored.path / WEIGHTS_FILE
    blob = bytearray(path.read_bytes())
    index = {"header": 12, "middle": len(blob) // 2, "last byte": len(blob) - 1}[where]
    blob[index] ^= 0x01
    path.write_bytes(bytes(blob))
    with pytest.raises(ValueError, match="does not match the manifest"):
        load_model(tmp_path, stored.model_id)
