"""Calibration manifests: parsing errors name file and field; the reader's preprocessing
comes from the model's metadata; shapes and empty sets are clear errors."""

import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("onnx")
sys.path.insert(0, str(Path(__file__).parent))

import quant_helpers as qh  # noqa: E402

from edgeprune.quant.calibration import (  # noqa: E402
    BUILTIN_DIR,
    CalibrationError,
    load_manifest,
    open_calibration,
)


@pytest.fixture
def tiny(tmp_path, onnx_models):
    return qh.with_preprocess(onnx_models.tiny_cnn(tmp_path / "tiny.onnx"))


@pytest.fixture
def folder(tmp_path):
    return qh.image_folder(tmp_path / "images", count=12)


def test_builtin_manifests_parse():
    names = sorted(p.stem for p in BUILTIN_DIR.glob("*.toml"))
    assert {"fashion-mnist", "foolbox-imagenet", "image-folder-example"} <= set(names)
    for name in names:
        m = load_manifest(name)  # a bare name finds calibration/NAME.toml
        assert m.count > 0
    fm = load_manifest("fashion-mnist")
    assert (fm.kind, fm.split, fm.count, fm.holdout) == ("fashion-mnist", "train", 512, 512)


def test_unknown_key_names_file_and_field(tmp_path):
    path = qh.manifest(tmp_path / "bad.toml", '[source]\nkind = "fashion-mnist"\n[samples]\ncount = 4\ncuont = 5\n')
    with pytest.raises(CalibrationError, match=r"bad\.toml: unknown key samples\.cuont; allowed: count"):
        load_manifest(path)


def test_bad_kind_and_missing_count(tmp_path):
    with pytest.raises(CalibrationError, match="source.kind 'mnist' is not one of"):
        load_manifest(qh.manifest(tmp_path / "a.toml", '[source]\nkind = "mnist"\n[samples]\ncount = 1\n'))
    with pytest.raises(CalibrationError, match=r"b\.toml: samples\.count is required"):
        load_manifest(qh.manifest(tmp_path / "b.toml", '[source]\nkind = "fashion-mnist"\n'))


def test_empty_calibration_set_names_the_manifest(tmp_path, tiny, folder):
    path = qh.folder_manifest(tmp_path, folder, count=0)
    with pytest.raises(CalibrationError, match=r"calib\.toml: the calibration set is empty"):
        open_calibration(path, tiny)
    empty = tmp_path / "nothing"
    empty.mkdir()
    with pytest.raises(CalibrationError, match=r"calib\.toml: the calibration set is empty: no images"):
        open_calibration(qh.folder_manifest(tmp_path, empty), tiny)


def test_shape_mismatch_names_input_and_both_shapes(tmp_path, tiny):
    # Fashion-MNIST images are 1x28x28; the tiny model takes 3x16x16
    path = qh.manifest(tmp_path / "fm.toml", '[source]\nkind = "fashion-mnist"\n[samples]\ncount = 8\n'
                       '[preprocess]\nmean = [0.5, 0.5, 0.5]\nstd = [0.25, 0.25, 0.25]\n')
    with pytest.raises(CalibrationError) as err:
        open_calibration(path, tiny)
    text = str(err.value)
    assert "'input'" in text and "[N, 3, 16, 16]" in text and "[N, 1, 28, 28]" in text and "fm.toml" in text


def test_preprocess_comes_from_metadata_and_a_contradicting_manifest_is_an_error(tmp_path, tiny, folder):
    cal = open_calibration(qh.folder_manifest(tmp_path, folder, count=8, holdout=4), tiny)
    assert cal.model.mean == (0.5, 0.5, 0.5) and "metadata" in cal.model.preprocess_source
    assert cal.images.shape == (12, 3, 16, 16) and (cal.n_calib, cal.n_holdout) == (8, 4)
    feeds = list(cal.batches())
    x = np.concatenate([f["input"] for f in feeds])
    np.testing.assert_allclose(x, (cal.images[:8] / 255.0 - 0.5) / 0.25, rtol=1e-6, atol=1e-6)
    bad = qh.folder_manifest(tmp_path, folder, extra="[preprocess]\nmean = [0.4, 0.4, 0.4]\nstd = [0.2, 0.2, 0.2]\n")
    with pytest.raises(CalibrationError, match="disagree with the model's edgeprune.preprocess metadata"):
        open_calibration(bad, tiny)


def test_manifest_preprocess_is_the_fallback_without_metadata(tmp_path, onnx_models, folder):
    bare = onnx_models.tiny_cnn(tmp_path / "bare.onnx")
    with pytest.raises(CalibrationError, match="has no edgeprune.preprocess metadata"):
        open_calibration(qh.folder_manifest(tmp_path, folder), bare)
    path = qh.folder_manifest(tmp_path, folder, extra="[preprocess]\nmean = [0.4, 0.4, 0.4]\nstd = [0.2, 0.2, 0.2]\n")
    cal = open_calibration(path, bare)
    assert cal.model.mean == (0.4, 0.4, 0.4) and "manifest" in cal.model.preprocess_source


def test_fashion_mnist_slice(tmp_path):
    import onnx
    from onnx import TensorProto, helper

    pytest.importorskip("onnxruntime")
    if not Path("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz").is_file():
        pytest.skip("Fashion-MNIST not installed")
    graph = helper.make_graph([helper.make_node("Identity", ["input"], ["logits"])], "g",
                              [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 1, 28, 28])],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 1, 28, 28])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.save(model, str(tmp_path / "id.onnx"))
    cal = open_calibration(load_manifest("fashion-mnist"), tmp_path / "id.onnx")
    assert cal.images.shape == (1024, 1, 28, 28) and cal.labels is not None and cal.labels.shape == (1024,)
    assert cal.model.mean == (0.2860,)  # the manifest's fallback (this model has no metadata)


def test_foolbox_images_are_found():
    from edgeprune.quant.calibration import foolbox_data_dir

    try:
        files = sorted(foolbox_data_dir().glob("imagenet_*"))
    except Exception:
        pytest.skip("foolbox not installed")
    assert len(files) == 20


def test_the_builtin_fashion_mnist_manifest_on_another_shape_is_a_shape_error(tiny):
    """Its Fashion-MNIST mean/std contradict an RGB model's metadata too, but the shape is what is
    wrong: that is what the error says."""
    with pytest.raises(CalibrationError) as err:
        open_calibration("fashion-mnist", tiny)
    text = str(err.value)
    assert "does not fit the model" in text and "[N, 3, 16, 16]" in text and "disagree" not in text


def test_the_shipped_image_folder_example_works_as_shipped(tiny):
    """calibration/image-folder-example.toml reads the 96 real images shipped next to it,
    resized and normalised for the model (its RGB metadata wins over the manifest's fallback)."""
    calib = open_calibration("image-folder-example", tiny)
    assert calib.manifest.folder == BUILTIN_DIR / "example-images"
    assert (calib.n_calib, calib.n_holdout) == (64, 32) and not calib.notes
    assert calib.images.shape == (96, 3, 16, 16)
    batch = next(iter(calib.batches()))
    (x,) = batch.values()
    assert x.dtype == np.float32 and x.shape[1:] == (3, 16, 16) and np.isfinite(x).all() and x.std() > 0.1
