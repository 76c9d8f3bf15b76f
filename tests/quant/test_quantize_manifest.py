"""The quantize folder's manifest.json, and the check of the input model's export folder."""

import json
import sys
from pathlib import Path

import pytest

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
sys.path.insert(0, str(Path(__file__).parent))

import quant_helpers as qh  # noqa: E402

from edgeprune.files.manifest import (  # noqa: E402
    ArtifactError,
    preprocess_record,
    read_manifest,
    write_manifest,
)
from edgeprune.quant import QuantizeConfig, quantize_onnx  # noqa: E402

CLASSES = ["a", "b", "c", "d"]


@pytest.fixture
def export_dir(tmp_path, onnx_models):
    """A folder laid out like `edgeprune export` writes it: model.onnx, export.json, manifest.json."""
    folder = tmp_path / "export"
    folder.mkdir()
    model = qh.with_preprocess(onnx_models.tiny_cnn(folder / "model.onnx", channels=16))
    m = onnx.load(str(model))
    prop = m.metadata_props.add()
    prop.key, prop.value = "edgeprune.spec", "tests:tiny_cnn"
    onnx.save(m, str(model))
    (folder / "export.json").write_text(json.dumps({"files": [{"path": "model.onnx"}]}))
    write_manifest(folder, "export", ["model.onnx", "export.json"], spec="tests:tiny_cnn",
                   input_shape=["batch", 3, 16, 16], preprocess=preprocess_record((0.5,) * 3, (0.25,) * 3, "tests"),
                   classes=CLASSES, settings={})
    return folder


@pytest.fixture
def calib(tmp_path):
    return qh.folder_manifest(tmp_path, qh.image_folder(tmp_path / "images", count=16), count=8, holdout=8)


def test_quantize_folder_manifest_verifies(tmp_path, export_dir, calib):
    config = QuantizeConfig(openvino=False, reduce_range="on")
    result = quantize_onnx(export_dir / "model.onnx", calib, tmp_path / "q", config, progress=False)
    manifest = read_manifest(tmp_path / "q", kinds=("quantize",))
    assert result.files["manifest"] == tmp_path / "q" / "manifest.json"
    assert sorted(manifest.files) == ["model.onnx", "quantize.json"]
    assert manifest.spec == "tests:tiny_cnn" and manifest.classes == CLASSES
    assert manifest.input_shape == ["batch", 3, 16, 16]
    assert manifest.mean_std == ((0.5,) * 3, (0.25,) * 3) and manifest.preprocess["source"] == "tests"
    assert manifest.settings == {**config.to_json(), "reduce_range_enabled": True}
    settings = {k: v for k, v in manifest.settings.items() if k != "reduce_range_enabled"}
    assert QuantizeConfig.from_json(settings) == config


def test_a_replaced_model_in_an_export_folder_is_refused(tmp_path, export_dir, calib, onnx_models):
    onnx_models.tiny_cnn(export_dir / "model.onnx", channels=8)  # another model over the exported one
    out = tmp_path / "q"
    with pytest.raises(ArtifactError, match=r"model\.onnx"):
        quantize_onnx(export_dir / "model.onnx", calib, out, QuantizeConfig(openvino=False), progress=False)
    assert not out.exists()


def test_a_users_own_model_has_no_manifest_and_is_accepted(tmp_path, onnx_models, calib):
    model = qh.with_preprocess(onnx_models.tiny_cnn(tmp_path / "mine.onnx", channels=16, batch=2))
    quantize_onnx(model, calib, tmp_path / "q", QuantizeConfig(openvino=False), progress=False)
    manifest = read_manifest(tmp_path / "q")
    assert manifest.kind == "quantize" and manifest.classes is None and manifest.spec is None
    assert manifest.input_shape == [2, 3, 16, 16]
    assert "metadata" in manifest.preprocess["source"]
