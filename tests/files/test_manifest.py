"""manifest.json: written last, verified on read, every problem names the file (no torch)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from edgeprune.files.manifest import (
    ArtifactError,
    clear_manifest,
    manifest_of_file,
    preprocess_record,
    read_manifest,
    write_manifest,
)


def _folder(tmp_path):
    folder = tmp_path / "run"
    folder.mkdir()
    (folder / "model.onnx").write_bytes(b"onnx bytes")
    (folder / "export.json").write_text("{}")
    write_manifest(folder, "export", ["model.onnx", "export.json"], spec="edgeprune:resnet20",
                   input_shape=["batch", 1, 28, 28], preprocess=preprocess_record([0.286], [0.353], "fashion-mnist"),
                   classes=["a", "b"], settings={"opset": 17})
    return folder


def test_round_trip(tmp_path):
    m = read_manifest(_folder(tmp_path), kinds=("export",))
    assert m.kind == "export" and m.spec == "edgeprune:resnet20" and m.input_shape == ["batch", 1, 28, 28]
    assert m.mean_std == ((0.286,), (0.353,)) and m.classes == ["a", "b"] and m.settings == {"opset": 17}
    assert m.preprocess["pixels"] == "x = (uint8 / 255 - mean[c]) / std[c]"
    assert set(m.files) == {"model.onnx", "export.json"} and all(len(e["sha256"]) == 64 for e in m.files.values())


@pytest.mark.parametrize("damage, message", [
    (lambda f: (f / "model.onnx").write_bytes(b"onnx byteZ"), "model.onnx: sha256"),      # same size, other run
    (lambda f: (f / "model.onnx").write_bytes(b"short"), "model.onnx: 5 bytes"),
    (lambda f: (f / "model.onnx").unlink(), "missing model.onnx, which its manifest.json lists"),
    (lambda f: clear_manifest(f), "holds export.json but no manifest.json"),
    (lambda f: (f / "manifest.json").write_text("{"), "manifest.json: not readable JSON"),
    (lambda f: (f / "manifest.json").write_text(json.dumps({"schema": "edgeprune.manifest/9"})), "'schema' must be"),
])
def test_a_damaged_folder_is_refused_naming_the_file(tmp_path, damage, message):
    folder = _folder(tmp_path)
    damage(folder)
    with pytest.raises(ArtifactError, match=message.replace("(", r"\(")):
        read_manifest(folder)


def test_kind_and_single_file_readers(tmp_path):
    folder = _folder(tmp_path)
    with pytest.raises(ArtifactError, match="written by `edgeprune export`, but this needs .*`edgeprune prune`"):
        read_manifest(folder, kinds=("prune",))
    assert manifest_of_file(folder / "model.onnx").kind == "export"
    (folder / "stray.onnx").write_bytes(b"x")
    with pytest.raises(ArtifactError, match="stray.onnx: not one of the files"):
        manifest_of_file(folder / "stray.onnx")
    own = tmp_path / "own"
    own.mkdir()
    (own / "model.onnx").write_bytes(b"a user's own file")
    assert manifest_of_file(own / "model.onnx") is None  # not an edgeprune folder: nothing to check


def test_torch_free():
    code = ("import sys; import edgeprune.files.manifest, edgeprune.files.onnx_metadata, edgeprune.files.toml, "
            "edgeprune.files.hashing, edgeprune.pruning.request; assert 'torch' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)
