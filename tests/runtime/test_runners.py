"""Runners behind one protocol: registry, settings, errors, and ORT/OpenVINO parity. No torch."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from edgeprune.errors import MissingDependencyError, SpecError
from edgeprune.runtime import (
    InputSpec,
    LayerProfiler,
    Runner,
    RunnerError,
    available_runtimes,
    make_settings,
    open_runner,
    parse_shape_option,
    resolve_input_shapes,
    runtime_entry,
)
from edgeprune.runtime.openvino import check_device

DESCRIBE_KEYS = {"runtime", "runtime_version", "device", "threads", "precision", "quantized", "settings"}


def _input(shape=(2, 3, 16, 16), seed=0):
    return {"input": np.random.default_rng(seed).standard_normal(shape).astype(np.float32)}


# --- registry and settings ------------------------------------------------------------


def test_registry_has_every_backend_and_aliases():
    assert {"ort", "openvino", "torch"} <= set(available_runtimes())
    assert runtime_entry("onnxruntime").name == "ort"
    assert runtime_entry("ov").name == "openvino"
    with pytest.raises(RunnerError, match="unknown runtime 'tflite'; known: openvino, ort, torch"):
        runtime_entry("tflite")


def test_settings_reject_unknown_and_bad_values():
    assert make_settings("ort", {"threads": 2}).threads == 2
    with pytest.raises(RunnerError, match=r"settings\.thread: unknown setting for runtime 'ort'"):
        make_settings("ort", {"thread": 2})
    with pytest.raises(RunnerError, match=r"settings\.threads must be a positive integer, got 'two'"):
        make_settings("ort", {"threads": "two"})
    with pytest.raises(RunnerError, match="performance_hint must be one of LATENCY, THROUGHPUT"):
        make_settings("openvino", {"performance_hint": "FAST"})
    with pytest.raises(RunnerError, match="threads applies to the CPU device only"):
        make_settings("openvino", {"device": "GPU", "threads": 2})


def test_openvino_compile_config_forces_f32_by_default():
    config = make_settings("openvino", {"threads": 1}).compile_config()
    assert config == {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_NUM_THREADS": 1, "INFERENCE_PRECISION_HINT": "f32"}
    assert "INFERENCE_PRECISION_HINT" not in make_settings("openvino", {"precision": "auto"}).compile_config()


# --- input shapes (pure) --------------------------------------------------------------

SPEC = InputSpec("input", ("batch", 3, 16, 16), np.dtype(np.float32))


def test_resolve_dynamic_batch():
    assert resolve_input_shapes([SPEC])[0].shape == (1, 3, 16, 16)
    assert resolve_input_shapes([SPEC], batch=4)[0].shape == (4, 3, 16, 16)
    assert resolve_input_shapes([SPEC], shapes={"input": (2, 3, 16, 16)})[0].shape == (2, 3, 16, 16)


def test_resolve_fixed_batch_mismatch_names_input_and_shapes():
    fixed = InputSpec("images", (1, 3, 224, 224), np.dtype(np.float32))
    with pytest.raises(SpecError) as err:
        resolve_input_shapes([fixed], batch=8)
    msg = str(err.value)
    assert "'images'" in msg and "[1, 3, 224, 224]" in msg and "[8, 3, 224, 224]" in msg


@pytest.mark.parametrize(
    "shapes, message",
    [
        ({"input": (1, 3, 32, 32)}, r"input 'input': the model expects shape \[\?, 3, 16, 16\], got \[1, 3, 32, 32\]"),
        ({"input": (1, 3, 16)}, r"expects shape .* got \[1, 3, 16\]"),
        ({"image": (1, 3, 16, 16)}, "--shape names input 'image', but the model's inputs are: input"),
    ],
)
def test_resolve_explicit_shape_errors(shapes, message):
    with pytest.raises(SpecError, match=message):
        resolve_input_shapes([InputSpec("input", (None, 3, 16, 16), np.dtype(np.float32))], shapes=shapes)


def test_resolve_dynamic_spatial_needs_a_shape():
    spec = InputSpec("input", ("batch", 3, "h", "w"), np.dtype(np.float32))
    with pytest.raises(SpecError, match=r"dynamic dimension 2 .* --shape input=Nx3xNxN"):
        resolve_input_shapes([spec])
    assert resolve_input_shapes([spec], shapes={"input": (1, 3, 8, 8)})[0].shape == (1, 3, 8, 8)


def test_parse_shape_option():
    assert parse_shape_option("input=1x3x224x224") == ("input", (1, 3, 224, 224))
    assert parse_shape_option("a=b=2x3") == ("a=b", (2, 3))
    with pytest.raises(SpecError, match="NAME=D1xD2"):
        parse_shape_option("1x3x224x224")


# --- ONNX Runtime and OpenVINO runners ------------------------------------------------


@pytest.mark.parametrize("runtime", ["ort", "openvino"])
def test_runner_protocol_and_describe(runtime, tiny_onnx):
    pytest.importorskip("onnxruntime" if runtime == "ort" else "openvino")
    runner = open_runner(tiny_onnx, runtime, batch=2, threads=1)
    assert isinstance(runner, Runner) and isinstance(runner, LayerProfiler)
    assert [(i.name, i.shape, i.dtype) for i in runner.inputs] == [("input", (2, 3, 16, 16), np.dtype(np.float32))]
    assert runner.output_names == ["logits"]
    (logits,) = runner.run(_input())
    assert logits.shape == (2, 4) and logits.dtype == np.float32
    info = runner.describe()
    assert DESCRIBE_KEYS <= set(info)
    assert info["runtime"] == runtime and info["device"] == "CPU" and info["threads"] == 1
    assert info["precision"] == "f32" and info["quantized"] is False
    runner.close()


def test_ort_and_openvino_agree_with_f32_hint(tiny_onnx, tiny_weights, onnx_models):
    pytest.importorskip("onnxruntime")
    pytest.importorskip("openvino")
    feeds = _input((3, 3, 16, 16), seed=1)
    expected = onnx_models.reference_forward(feeds["input"], tiny_weights)
    (ort_out,) = open_runner(tiny_onnx, "ort", batch=3, threads=1).run(feeds)
    (ov_out,) = open_runner(tiny_onnx, "openvino", batch=3, threads=1, precision="f32").run(feeds)
    np.testing.assert_allclose(ort_out, ov_out, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(ort_out, expected, rtol=1e-4, atol=1e-5)


def test_openvino_reports_precision_actually_used(tiny_onnx):
    pytest.importorskip("openvino")
    runner = open_runner(tiny_onnx, "openvino", precision="f32", threads=1)
    assert runner.describe()["precision"] == "f32"
    # 'auto' leaves the device default; whatever it is, it is read back, not assumed.
    auto = open_runner(tiny_onnx, "openvino", precision="auto", threads=1).describe()
    assert auto["precision"] in {"f32", "bf16", "f16"}


def test_openvino_absent_device_lists_available(tiny_onnx):
    ov = pytest.importorskip("openvino")
    available = ov.Core().available_devices
    with pytest.raises(RunnerError, match=r"OpenVINO device 'NPU' is not available on this machine; available: CPU"):
        check_device("NPU", ["CPU"])
    check_device("GPU", ["CPU", "GPU.0"])  # a family name matches GPU.0
    if not any(d.startswith("NPU") for d in available):
        with pytest.raises(RunnerError, match="'NPU' is not available"):
            open_runner(tiny_onnx, "openvino", device="NPU")


def test_ort_unknown_execution_provider(tiny_onnx):
    pytest.importorskip("onnxruntime")
    with pytest.raises(RunnerError, match="execution provider 'FooExecutionProvider' is not available here; available:"):
        open_runner(tiny_onnx, "ort", execution_provider="FooExecutionProvider")


@pytest.mark.parametrize("runtime, package, extra", [("ort", "onnxruntime", "ort"), ("openvino", "openvino", "openvino")])
def test_missing_runtime_says_how_to_install(runtime, package, extra, tiny_onnx, monkeypatch):
    monkeypatch.setitem(sys.modules, package, None)  # makes `import package` raise ImportError
    with pytest.raises(MissingDependencyError, match=rf"pip install 'edgeprune\[{extra}\]'"):
        open_runner(tiny_onnx, runtime)


@pytest.mark.parametrize("runtime", ["ort", "openvino"])
def test_missing_and_unreadable_model_files(runtime, tmp_path):
    with pytest.raises(SpecError, match="model file not found: .*nope.onnx"):
        open_runner(tmp_path / "nope.onnx", runtime)
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"not a model")
    with pytest.raises(SpecError, match="cannot (load|read) this model"):
        open_runner(garbage, runtime)


@pytest.mark.parametrize("runtime", ["ort", "openvino"])
def test_fixed_batch_model_rejects_other_batch(runtime, tmp_path, onnx_models):
    path = onnx_models.tiny_cnn(tmp_path / "fixed.onnx", batch=1)
    with pytest.raises(SpecError, match=r"input 'input': the model has a fixed batch of 1 \(shape \[1, 3, 16, 16\]\); batch 4 asks for \[4, 3, 16, 16\]"):
        open_runner(path, runtime, batch=4)
