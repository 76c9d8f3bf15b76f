"""A failed export leaves nothing behind and never touches a good artifact already there."""

import json

import numpy as np
import pytest

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
pytest.importorskip("openvino")

from torch_helpers import randomize_batchnorm  # noqa: E402

from edgeprune.export import ExportError, ExportOptions, ExportParityError, export_model  # noqa: E402
from edgeprune.export.staging import Staging  # noqa: E402
from edgeprune.models import build_model  # noqa: E402
from edgeprune.models.preprocess import FASHION_MNIST  # noqa: E402


def _resnet20():
    model, shape = build_model("edgeprune:resnet20")
    return randomize_batchnorm(model), shape


def _snapshot(folder):
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


@pytest.fixture
def good_export(tmp_path):
    model, shape = _resnet20()
    out = tmp_path / "out"
    export_model(model, shape, out, preprocess=FASHION_MNIST)
    return out, _snapshot(out)


def test_zero_tolerance_fails_and_keeps_the_existing_artifact(good_export):
    out, before = good_export
    model, shape = _resnet20()
    with pytest.raises(ExportParityError) as info:
        export_model(model, shape, out, preprocess=FASHION_MNIST, options=ExportOptions(rtol=0.0))
    message = str(info.value)
    assert "ort (model.onnx) differs from torch" in message and "above the tolerance 0" in message
    assert "openvino (model.xml) differs from torch" in message
    assert f"nothing was written to {out}" in message
    assert _snapshot(out) == before
    assert sorted(p.name for p in out.parent.iterdir()) == ["out"]  # no staging folder left


class _BrokenRunner:
    """Wraps a real runner and corrupts OpenVINO's logits."""

    def __init__(self, runner):
        self.runner = runner
        self.inputs = runner.inputs

    def run(self, feeds):
        return [out + 0.5 for out in self.runner.run(feeds)]

    def describe(self):
        return self.runner.describe()

    def close(self):
        self.runner.close()


def _broken_openvino(path, runtime, **kwargs):
    from edgeprune.runtime import open_runner

    runner = open_runner(path, runtime, **kwargs)
    return _BrokenRunner(runner) if runtime == "openvino" else runner


def test_broken_runtime_fails_and_writes_nothing(tmp_path):
    model, shape = _resnet20()
    out = tmp_path / "new" / "deeper" / "out"
    with pytest.raises(ExportParityError, match=r"openvino \(model.xml\) differs from torch") as info:
        export_model(model, shape, out, preprocess=FASHION_MNIST, opener=_broken_openvino)
    assert "ort" not in str(info.value).split("export parity failed: ")[1].split(" (")[0]
    assert list(tmp_path.iterdir()) == []  # not even the parent folders it had to create


def test_broken_runtime_keeps_the_existing_artifact(good_export):
    out, before = good_export
    model, shape = _resnet20()
    with pytest.raises(ExportParityError):
        export_model(model, shape, out, preprocess=FASHION_MNIST, opener=_broken_openvino)
    assert _snapshot(out) == before


def test_nan_output_fails(tmp_path):
    class NanRunner(_BrokenRunner):
        def run(self, feeds):
            return [np.full_like(o, np.nan) for o in self.runner.run(feeds)]

    def opener(path, runtime, **kwargs):
        from edgeprune.runtime import open_runner

        return NanRunner(open_runner(path, runtime, **kwargs))

    model, shape = _resnet20()
    with pytest.raises(ExportParityError, match="nan relative"):
        export_model(model, shape, tmp_path / "out", preprocess=FASHION_MNIST,
                     options=ExportOptions(formats=("onnx",)), opener=opener)
    assert list(tmp_path.iterdir()) == []


def test_reexport_replaces_files_and_drops_stale_ones(good_export):
    out, before = good_export
    (out / "notes.txt").write_text("mine")
    model, shape = _resnet20()
    export_model(model, shape, out, preprocess=FASHION_MNIST, options=ExportOptions(formats=("onnx",)))
    assert sorted(p.name for p in out.iterdir()) == ["export.json", "manifest.json", "model.onnx", "notes.txt"]
    assert json.loads((out / "export.json").read_text())["formats"] == ["onnx"]


def test_out_is_a_file(tmp_path):
    target = tmp_path / "file"
    target.write_text("x")
    model, shape = _resnet20()
    with pytest.raises(ExportError, match="exists and is not a folder"):
        export_model(model, shape, target, preprocess=FASHION_MNIST)
    assert target.read_text() == "x"


def test_staging_cleans_up_on_error(tmp_path):
    with pytest.raises(RuntimeError):
        with Staging(tmp_path / "a" / "b" / "out") as stage:
            (stage.path / "model.onnx").write_text("half")
            raise RuntimeError("crash")
    assert list(tmp_path.iterdir()) == []


def test_staging_publishes_marker_last(tmp_path):
    out = tmp_path / "out"
    with Staging(out) as stage:
        for name in ("a.bin", "export.json"):
            (stage.path / name).write_text(name)
        published = stage.publish(["a.bin"], marker="export.json")
    assert [p.name for p in published] == ["a.bin", "export.json"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
