"""The torch reference runner against ONNX Runtime on the same weights (needs torch; the
rest of tests/runtime does not)."""

from __future__ import annotations

import numpy as np
import pytest

from edgeprune.errors import SpecError
from edgeprune.runtime import open_runner
from edgeprune.runtime.torch import TorchRunner, TorchSettings

torch = pytest.importorskip("torch")


def _module(weights):
    conv = torch.nn.Conv2d(3, weights["conv1.weight"].shape[0], 3, padding=1)
    fc = torch.nn.Linear(weights["fc.weight"].shape[1], weights["fc.weight"].shape[0])
    with torch.no_grad():
        conv.weight.copy_(torch.from_numpy(weights["conv1.weight"]))
        conv.bias.copy_(torch.from_numpy(weights["conv1.bias"]))
        fc.weight.copy_(torch.from_numpy(weights["fc.weight"]))
        fc.bias.copy_(torch.from_numpy(weights["fc.bias"]))
    return torch.nn.Sequential(conv, torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), fc)


def test_torch_module_matches_onnxruntime(tiny_onnx, tiny_weights):
    pytest.importorskip("onnxruntime")
    feeds = {"input": np.random.default_rng(0).standard_normal((2, 3, 16, 16)).astype(np.float32)}
    runner = TorchRunner(_module(tiny_weights), TorchSettings(), shapes={"input": (2, 3, 16, 16)})
    (expected,) = runner.run(feeds)
    (actual,) = open_runner(tiny_onnx, "ort", batch=2, threads=1).run(feeds)
    np.testing.assert_allclose(actual, expected, rtol=1e-5, atol=1e-5)
    info = runner.describe()
    assert info["runtime"] == "torch" and info["precision"] == "f32" and info["device"] == "CPU"


@pytest.mark.slow  # torch.export takes ~2 s
def test_torch_export_program_file(tmp_path, tiny_weights):
    module = _module(tiny_weights).eval()
    example = torch.randn(1, 3, 16, 16)
    path = tmp_path / "tiny.pt2"
    torch.export.save(torch.export.export(module, (example,)), str(path))
    runner = open_runner(path, "torch")
    assert [(i.shape, i.dtype) for i in runner.inputs] == [((1, 3, 16, 16), np.dtype(np.float32))]
    (out,) = runner.run({runner.inputs[0].name: example.numpy()})
    np.testing.assert_allclose(out, module(example).detach().numpy(), rtol=1e-5, atol=1e-6)


def test_torch_runner_refuses_pickles(tmp_path):
    path = tmp_path / "model.pt"
    path.write_bytes(b"\x80\x04")
    with pytest.raises(SpecError, match="pickled modules are not loaded"):
        open_runner(path, "torch")
