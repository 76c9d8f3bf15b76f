"""`edgeprune eval` on a torch folder, its ONNX export and its OpenVINO IR gives the same top-1."""

import json

import pytest
from click.testing import CliRunner

from edgeprune.cli import main

FMNIST = "/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz"


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    import os

    if not os.path.exists(FMNIST):
        pytest.skip("Fashion-MNIST not installed (Debian package dataset-fashion-mnist)")
    tmp = tmp_path_factory.mktemp("deployed")
    runner = CliRunner()
    r = runner.invoke(main, ["prune", "edgeprune:resnet20", "--budget", "flops=0.5", "--align", "8", "--out", str(tmp / "prune")])
    assert r.exit_code == 0, r.output
    r = runner.invoke(main, ["export", str(tmp / "prune"), "--out", str(tmp / "export")])
    assert r.exit_code == 0, r.output
    return tmp


def _eval(src, out):
    r = CliRunner().invoke(main, ["eval", str(src), "--data", "fashion-mnist", "--test-subset", "600", "--json", str(out)])
    assert r.exit_code == 0, r.output
    return json.loads(out.read_text())


def test_torch_onnx_openvino_agree_on_top1(exported, tmp_path):
    torch_result = _eval(exported / "prune", tmp_path / "t.json")
    onnx_result = _eval(exported / "export" / "model.onnx", tmp_path / "o.json")
    ov_result = _eval(exported / "export" / "model.xml", tmp_path / "v.json")
    assert torch_result["samples"] == onnx_result["samples"] == ov_result["samples"] == 600
    assert onnx_result["runtime"] == "ort" and ov_result["runtime"] == "openvino"
    assert "metadata" in onnx_result["preprocess"]
    # fp32 everywhere: at most one borderline image may flip
    assert abs(torch_result["accuracy"] - onnx_result["accuracy"]) <= 1 / 600
    assert abs(torch_result["accuracy"] - ov_result["accuracy"]) <= 1 / 600


def test_missing_model_file_is_a_clear_error(tmp_path):
    r = CliRunner().invoke(main, ["eval", str(tmp_path / "nope.onnx"), "--data", "fashion-mnist"])
    assert r.exit_code == 2 and "does not exist" in r.output
