"""`edgeprune export` through click's CliRunner on the `edgeprune` group."""

import json
import sys

import pytest
from click.testing import CliRunner

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
pytest.importorskip("openvino")

from edgeprune.cli import main  # noqa: E402


def _invoke(*args):
    return CliRunner().invoke(main, ["export", *map(str, args)])


@pytest.fixture(scope="module")
def pruned_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("prune") / "run"
    result = CliRunner().invoke(
        main, ["prune", "edgeprune:resnet20", "--budget", "flops=0.5", "--align", "8", "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    return out


def test_export_a_prune_folder(pruned_dir, tmp_path):
    out = tmp_path / "export"
    result = _invoke(pruned_dir, "--format", "onnx", "--format", "openvino", "--out", out)
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == ["export.json", "manifest.json", "model.bin", "model.onnx", "model.xml"]
    report = json.loads((out / "export.json").read_text())
    assert report["metadata"]["edgeprune.budget"] == "flops=0.5"
    assert "edgeprune.plan_fingerprint" in report["metadata"]
    assert "parity   ort" in result.output and "parity   openvino" in result.output
    assert "(dynamic batch)" in result.output and "f32" in result.output


def test_export_a_spec_fixed_batch_fp16_custom_preprocessing(tmp_path):
    out = tmp_path / "export"
    result = _invoke(
        "edgeprune:resnet20", "--format", "openvino", "--fp16", "--batch", "2", "--opset", "18",
        "--mean", "0.5", "--std", "0.25", "--out", out,
    )
    assert result.exit_code == 0, result.output
    report = json.loads((out / "export.json").read_text())
    assert report["opset"] == 18 and report["input_shape"] == [2, 1, 28, 28] and report["fp16_weights"]
    assert report["preprocess"]["mean"] == [0.5] and report["preprocess"]["std"] == [0.25]
    assert report["parity"]["openvino"]["tolerance_rel"] == 1e-2
    assert sorted(p.name for p in out.iterdir()) == ["export.json", "manifest.json", "model.bin", "model.xml"]


def test_spec_with_weights(tmp_path):
    import torch

    from edgeprune.models import build_model

    model, _ = build_model("edgeprune:resnet20")
    torch.save(model.state_dict(), tmp_path / "w.pt")
    result = _invoke("edgeprune:resnet20", "--weights", tmp_path / "w.pt", "--format", "onnx", "--out", tmp_path / "e")
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize(
    "args, message",
    [
        (["runs/missing"], "does not exist and is not a model spec"),
        (["edgeprune:resnet20", "--format", "tflite"], "'tflite' is not one of 'onnx', 'openvino'"),
        (["edgeprune:resnet20", "--opset", "13"], "opset must be an integer >= 17"),
        (["edgeprune:resnet20", "--batch", "zero"], "--batch must be 'dynamic' or a positive integer"),
        (["edgeprune:resnet20", "--format", "onnx", "--fp16"], "fp16 compresses OpenVINO IR weights"),
        (["edgeprune:resnet20", "--mean", "0.1,0.2,0.3", "--std", "1,1,1"], "mean/std have 3 values, but the input shape"),
        (["edgeprune:resnet20", "--input-shape", "4x1x28x28", "--batch", "2"], "--input-shape has batch 4 but --batch is 2"),
        (["torchvision:resnet18", "--input-shape", "1x1x64x64"], "has 1 channels"),
        (["mypkg_missing.models:net"], "cannot import module 'mypkg_missing.models'"),
    ],
)
def test_bad_input_is_a_clear_error_and_writes_nothing(tmp_path, args, message):
    out = tmp_path / "export"
    result = _invoke(*args, "--out", out)
    assert result.exit_code == 2, result.output
    assert message in result.output and "Traceback" not in result.output
    assert list(tmp_path.iterdir()) == []


def test_incomplete_prune_folder(pruned_dir, tmp_path):
    partial = tmp_path / "partial"
    partial.mkdir()
    for name in ("plan.json", "manifest.json"):  # a crash before model.pt was written
        (partial / name).write_bytes((pruned_dir / name).read_bytes())
    result = _invoke(partial, "--out", tmp_path / "export")
    assert result.exit_code == 2
    assert "missing model.pt" in result.output and not (tmp_path / "export").exists()


@pytest.mark.parametrize(
    "module, fmt, hint",
    [("openvino", "openvino", "pip install 'edgeprune[openvino]'"), ("onnx", "onnx", "pip install 'edgeprune[onnx]'")],
)
def test_missing_package_names_the_extra(tmp_path, monkeypatch, module, fmt, hint):
    monkeypatch.setitem(sys.modules, module, None)  # import -> ImportError
    result = _invoke("edgeprune:resnet20", "--format", fmt, "--out", tmp_path / "export")
    assert result.exit_code == 2, result.output
    assert hint in result.output and "Traceback" not in result.output
    assert list(tmp_path.iterdir()) == []


def test_parity_failure_exits_nonzero(monkeypatch, tmp_path):
    from edgeprune.export import options

    original = options.ExportOptions.validate

    def zero_tolerance(self):
        object.__setattr__(self, "rtol", 0.0)
        original(self)

    monkeypatch.setattr(options.ExportOptions, "validate", zero_tolerance)
    out = tmp_path / "export"
    result = _invoke("edgeprune:resnet20", "--format", "onnx", "--out", out)
    assert result.exit_code == 2, result.output
    assert "export parity failed" in result.output and list(tmp_path.iterdir()) == []


def test_help_is_instant():
    import subprocess

    code = (
        "import sys, edgeprune.cli; "
        "heavy = [m for m in ('torch', 'onnx', 'openvino', 'onnxruntime') if m in sys.modules]; "
        "assert not heavy, heavy"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
    result = CliRunner().invoke(main, ["export", "--help"])
    assert result.exit_code == 0 and "--fp16" in result.output and "--batch" in result.output
