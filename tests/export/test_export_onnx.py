"""export_model on resnet20: parity torch == ONNX Runtime == OpenVINO, metadata, export.json."""

import json

import numpy as np
import pytest

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
pytest.importorskip("openvino")

from torch_helpers import randomize_batchnorm  # noqa: E402

from edgeprune.export import ExportError, ExportOptions, export_model  # noqa: E402
from edgeprune.export.onnx import locate_op  # noqa: E402
from edgeprune.files.onnx_metadata import read_metadata  # noqa: E402
from edgeprune.export.openvino import read_ir_metadata  # noqa: E402
from edgeprune.models import build_model  # noqa: E402
from edgeprune.models.preprocess import FASHION_MNIST  # noqa: E402

REPORT_KEYS = {
    "edgeprune_version", "spec", "input_shape", "formats", "options", "exporter", "opset", "simplified",
    "simplify_reason", "fp16_weights", "flops", "params", "preprocess", "metadata", "files", "parity",
    "openvino_precision", "versions", "timings_s", "tracer_warnings",
}


def _resnet20():
    model, shape = build_model("edgeprune:resnet20")
    return randomize_batchnorm(model), shape


@pytest.fixture(scope="module")
def dense_export(tmp_path_factory):
    model, shape = _resnet20()
    out = tmp_path_factory.mktemp("dense") / "export"
    result = export_model(
        model, shape, out, preprocess=FASHION_MNIST, metadata={"edgeprune.spec": "edgeprune:resnet20"}
    )
    return model, shape, out, result


def test_dense_parity_torch_ort_openvino(dense_export):
    _, _, _, result = dense_export
    parity = result.report["parity"]
    assert set(parity) == {"ort", "openvino"}
    for p in parity.values():
        assert p["passed"] and p["rel_diff"] <= 1e-4 and p["tolerance_rel"] == 1e-4
        assert p["top1_agreement"] == 1.0
        # batch 1 and 2 (dynamic batch), two seeds each
        assert sorted((r["batch"], r["seed"]) for r in p["runs"]) == [(1, 0), (1, 1), (2, 0), (2, 1)]
        assert p["samples"] == 6
    assert parity["openvino"]["precision"] == "f32" and result.report["openvino_precision"] == "f32"


def test_files_and_report(dense_export):
    _, _, out, result = dense_export
    assert sorted(p.name for p in out.iterdir()) == ["export.json", "manifest.json", "model.bin", "model.onnx", "model.xml"]
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".")]  # staging folder gone
    report = json.loads((out / "export.json").read_text())
    assert REPORT_KEYS <= set(report)
    assert report == json.loads(json.dumps(result.report))
    assert report["opset"] == 17 and report["simplified"] is True and report["simplify_reason"] is None
    assert report["input_shape"] == ["batch", 1, 28, 28]
    for f in report["files"]:
        assert (out / f["path"]).stat().st_size == f["bytes"] > 0 and len(f["sha256"]) == 64
    assert report["versions"]["onnxsim"] and report["versions"]["openvino"]
    assert set(result.files) == {"onnx", "openvino_xml", "openvino_bin", "report"}


def test_onnx_metadata_is_present_and_parseable(dense_export):
    model, shape, out, result = dense_export
    from edgeprune.pruning.graph import count_flops_params

    meta = read_metadata(out / "model.onnx")
    flops, params = count_flops_params(model, shape)
    assert int(meta["edgeprune.flops"]) == flops and int(meta["edgeprune.params"]) == params
    assert meta["edgeprune.spec"] == "edgeprune:resnet20"
    assert meta["edgeprune.version"]
    pre = json.loads(meta["edgeprune.preprocess"])
    assert pre == {"mean": [0.286], "std": [0.353], "input_shape": ["batch", 1, 28, 28], "scale": "pixels in [0,1]"}
    assert not [k for k in meta if k.startswith("onnxsim.")]
    # the IR carries the same metadata
    assert read_ir_metadata(out / "model.xml") == {k: v for k, v in meta.items() if k.startswith("edgeprune.")}
    # and another engineer's `compare` reads the FLOPs from it
    from edgeprune.profile.compare import parse_flops

    assert parse_flops(meta) == flops


def test_graph_names_and_dynamic_batch(dense_export):
    import onnx

    _, _, out, _ = dense_export
    graph = onnx.load(str(out / "model.onnx")).graph
    assert [i.name for i in graph.input] == ["input"] and [o.name for o in graph.output] == ["logits"]
    dims = graph.input[0].type.tensor_type.shape.dim
    assert dims[0].dim_param == "batch" and [d.dim_value for d in dims[1:]] == [1, 28, 28]
    from edgeprune.runtime import open_runner

    runner = open_runner(out / "model.xml", "openvino", batch=5)
    assert runner.run({"input": np.zeros((5, 1, 28, 28), np.float32)})[0].shape == (5, 10)


def test_fixed_batch_onnx_only(tmp_path):
    import onnx

    model, shape = _resnet20()
    out = tmp_path / "fixed"
    result = export_model(model, shape, out, preprocess=FASHION_MNIST, options=ExportOptions(formats=("onnx",), batch=3))
    assert sorted(p.name for p in out.iterdir()) == ["export.json", "manifest.json", "model.onnx"]
    dims = onnx.load(str(out / "model.onnx")).graph.input[0].type.tensor_type.shape.dim
    assert [d.dim_value for d in dims] == [3, 1, 28, 28]
    assert [r["batch"] for r in result.report["parity"]["ort"]["runs"]] == [3, 3]
    assert json.loads(read_metadata(out / "model.onnx")["edgeprune.preprocess"])["input_shape"] == [3, 1, 28, 28]
    assert result.report["openvino_precision"] is None


def test_fp16_ir_meets_the_looser_tolerance(tmp_path):
    model, shape = _resnet20()
    out = tmp_path / "fp16"
    result = export_model(
        model, shape, out, preprocess=FASHION_MNIST, options=ExportOptions(formats=("openvino",), fp16=True)
    )
    p = result.report["parity"]["openvino"]
    assert p["tolerance_rel"] == 1e-2 and p["passed"] and 1e-5 < p["rel_diff"] <= 1e-2  # FP16 weights do show
    assert sorted(q.name for q in out.iterdir()) == ["export.json", "manifest.json", "model.bin", "model.xml"]
    dense_bin = result.report["files"][1]["bytes"]
    assert dense_bin < 0.6 * 4 * result.report["params"]  # ~2 bytes per weight


def test_without_onnxsim_keeps_the_unsimplified_model(tmp_path, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "onnxsim", None)  # import onnxsim -> ImportError
    model, shape = _resnet20()
    result = export_model(model, shape, tmp_path / "e", preprocess=FASHION_MNIST, options=ExportOptions(formats=("onnx",)))
    assert result.report["simplified"] is False
    assert "onnxsim is not installed" in result.report["simplify_reason"]
    assert "pip install 'edgeprune[onnx]'" in result.report["simplify_reason"]
    assert result.report["parity"]["ort"]["passed"]


def test_failing_onnxsim_is_recorded_not_fatal(tmp_path, monkeypatch):
    import onnxsim

    def boom(*args, **kwargs):
        raise RuntimeError("shape inference exploded\nmore detail")

    monkeypatch.setattr(onnxsim, "simplify", boom)
    model, shape = _resnet20()
    result = export_model(model, shape, tmp_path / "e", preprocess=FASHION_MNIST, options=ExportOptions(formats=("onnx",)))
    assert result.report["simplified"] is False
    assert result.report["simplify_reason"] == "onnxsim failed: RuntimeError: shape inference exploded"


def _unexportable():
    import torch

    class Inner(torch.nn.Module):
        def forward(self, x):
            return torch.special.i1(x)

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv2d(3, 4, 3)
            self.blk = torch.nn.Sequential(torch.nn.ReLU(), Inner())

        def forward(self, x):
            return self.blk(self.conv(x)).mean((2, 3))

    return Net()


def test_unexportable_op_names_op_and_module(tmp_path, capfd):
    from edgeprune.models.preprocess import IMAGENET

    out = tmp_path / "e"
    with pytest.raises(ExportError) as info:
        export_model(_unexportable(), (1, 3, 16, 16), out, preprocess=IMAGENET)
    message = str(info.value)
    assert "operator 'aten::special_i1' in module 'blk.1' (Inner)" in message
    assert "opset 17" in message and "\n" not in message
    assert not out.exists() and list(tmp_path.iterdir()) == []
    assert "Torch IR graph" not in capfd.readouterr().out  # the exporter's graph dump is swallowed


def test_tracer_warnings_are_reported(tmp_path):
    import torch

    from edgeprune.models.preprocess import IMAGENET

    class Branchy(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv2d(3, 4, 3)

        def forward(self, x):
            y = self.conv(x)
            if y.mean() > -1e9:  # data-dependent branch: the trace freezes it
                y = y + 1
            return y.mean((2, 3))

    result = export_model(Branchy(), (1, 3, 8, 8), tmp_path / "e", preprocess=IMAGENET,
                          options=ExportOptions(formats=("onnx",)))
    assert result.report["parity"]["ort"]["passed"]
    assert any("Converting a tensor to a Python boolean" in w for w in result.report["tracer_warnings"])


def test_dense_export_has_no_tracer_warnings(dense_export):
    assert dense_export[3].report["tracer_warnings"] == []


def test_locate_op_top_level():
    log = "  %5 : Float(1) = aten::special_i1(%4), scope: __main__.Net:: # x.py:3:0"
    assert locate_op("aten::special_i1", log) == "(the top-level forward of Net)"
    assert locate_op("aten::other", log) is None


def test_metadata_keys_must_be_namespaced(tmp_path):
    model, shape = _resnet20()
    with pytest.raises(ExportError, match="must be a string starting with 'edgeprune.'"):
        export_model(model, shape, tmp_path / "e", preprocess=FASHION_MNIST, metadata={"flops": "1"})
    assert list(tmp_path.iterdir()) == []


def test_channel_mismatch_is_an_error(tmp_path):
    from edgeprune.errors import SpecError
    from edgeprune.models.preprocess import IMAGENET

    model, shape = _resnet20()
    with pytest.raises(SpecError, match="has 1 channels"):
        export_model(model, shape, tmp_path / "e", preprocess=IMAGENET)
