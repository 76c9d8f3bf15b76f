"""OpenVINO backend, and `compile_cpu` / `runtime_precisions` for checks on one compiled model.
``openvino`` is imported inside the functions that use it.

On CPUs with AMX (and some with AVX512-BF16) OpenVINO runs an FP32 model in bf16 unless
told ``INFERENCE_PRECISION_HINT=f32``. The default here is f32, so that parity checks and
latency numbers are about the model as written; the precision actually used is read back
from the compiled model and reported.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np

from edgeprune.errors import SpecError
from edgeprune.runtime.base import (
    Feeds,
    InputSpec,
    LayerSample,
    RunnerError,
    check_choice,
    check_ir_weights,
    check_model_file,
    check_positive_int,
    check_str,
    register_runtime,
    require,
    resolve_input_shapes,
    settings_dict,
)

PERFORMANCE_HINTS = ("LATENCY", "THROUGHPUT")
PRECISIONS = ("f32", "bf16", "f16", "auto")  # auto: the device's default (bf16 on AMX CPUs)
VIRTUAL_DEVICES = ("AUTO", "MULTI", "HETERO", "BATCH")


@dataclass(frozen=True)
class OpenVINOSettings:
    """OpenVINO compile settings.

    Attributes:
        device: CPU, GPU, NPU (or GPU.1 etc.); must be in ``ov.Core().available_devices``.
        performance_hint: LATENCY (one stream, batch-1 latency) or THROUGHPUT.
        threads: INFERENCE_NUM_THREADS (CPU only); None lets OpenVINO choose (it is reported).
        streams: NUM_STREAMS; None lets the performance hint choose.
        precision: INFERENCE_PRECISION_HINT: f32, bf16, f16, or auto for the device default.
    """

    device: str = "CPU"
    performance_hint: str = "LATENCY"
    threads: int | None = None
    streams: int | None = None
    precision: str = "f32"

    def validate(self, where: str = "settings") -> None:
        check_str(where, "device", self.device)
        check_choice(where, "performance_hint", self.performance_hint, PERFORMANCE_HINTS)
        check_positive_int(where, "threads", self.threads, optional=True)
        check_positive_int(where, "streams", self.streams, optional=True)
        check_choice(where, "precision", self.precision, PRECISIONS)
        if self.threads is not None and not self.device.upper().startswith("CPU"):
            raise RunnerError(f"{where}.threads applies to the CPU device only, not {self.device!r}")

    def compile_config(self) -> dict[str, Any]:
        """The property dict passed to ``Core.compile_model``."""
        config: dict[str, Any] = {"PERFORMANCE_HINT": self.performance_hint}
        if self.threads is not None:
            config["INFERENCE_NUM_THREADS"] = self.threads
        if self.streams is not None:
            config["NUM_STREAMS"] = self.streams
        if self.precision != "auto":
            config["INFERENCE_PRECISION_HINT"] = self.precision
        return config


def check_device(device: str, available: Sequence[str]) -> None:
    """RunnerError unless ``device`` (or its family, GPU for GPU.0) is available."""
    family = device.split(":")[0].split(".")[0].upper()
    if family in VIRTUAL_DEVICES:
        return
    if device in available or (device == family and any(a.split(".")[0] == family for a in available)):
        return
    raise RunnerError(
        f"OpenVINO device {device!r} is not available on this machine; "
        f"available: {', '.join(available) or 'none'}"
    )


def compile_cpu(
    model: str | os.PathLike | Any,
    input_shape: Sequence[int] | None = None,
    *,
    threads: int = 1,
    precision: str = "f32",
) -> Any:
    """Compile a model (a path, or an ``ov.Model``, which is left unchanged) for the CPU with its
    first input fixed to ``input_shape``, at ``precision`` on ``threads`` threads."""
    ov = require("openvino", "openvino")
    core = ov.Core()
    if isinstance(model, (str, os.PathLike)):
        check_ir_weights(model)
    m = core.read_model(str(model)) if isinstance(model, (str, os.PathLike)) else model.clone()
    if input_shape is not None:
        m.reshape({m.inputs[0].get_any_name(): ov.PartialShape([int(d) for d in input_shape])})
    return core.compile_model(m, "CPU", {"INFERENCE_NUM_THREADS": threads, "INFERENCE_PRECISION_HINT": precision})


def runtime_precisions(
    compiled: Any, layer_types: Sequence[str] = ("Convolution", "FullyConnected", "MatMul")
) -> dict[str, int]:
    """How many layers of ``layer_types`` a compiled model runs, by "<layer type> <runtime precision>
    <kernel>" (e.g. "Convolution u8 brgconv_avx2"), read from its runtime model."""
    counts: dict[str, int] = {}
    for op in compiled.get_runtime_model().get_ordered_ops():
        rt = op.get_rt_info()
        info = {k: rt[k].astype(str) for k in rt}
        if info.get("layerType") in layer_types:
            key = f"{info['layerType']} {info.get('runtimePrecision', '?')} {info.get('primitiveType', '?')}"
            counts[key] = counts.get(key, 0) + 1
    return counts


def _precision_name(value: Any) -> str:
    """'f32', 'bf16', ... from an ``ov.Type`` (or whatever get_property returned)."""
    name = getattr(value, "get_type_name", None)
    return name() if callable(name) else str(value)


@register_runtime("openvino", settings=OpenVINOSettings, package="openvino", extra="openvino", aliases=("ov",))
class OpenVINORunner:
    """An OpenVINO compiled model (ONNX or IR .xml) behind the Runner protocol."""

    runtime = "openvino"

    def __init__(
        self,
        path: str | os.PathLike,
        settings: OpenVINOSettings | None = None,
        *,
        batch: int | None = None,
        shapes: Mapping[str, Sequence[int]] | None = None,
    ) -> None:
        self.path = check_model_file(path)
        self.settings = settings or OpenVINOSettings()
        self.settings.validate()
        self._ov = require("openvino", "openvino")
        self._core = self._ov.Core()
        check_device(self.settings.device, self._core.available_devices)
        check_ir_weights(self.path)
        try:
            model = self._core.read_model(str(self.path))
        except Exception as err:
            raise SpecError(f"{self.path}: OpenVINO cannot read this model: {err}") from None
        declared = []
        for index, port in enumerate(model.inputs):
            names = port.get_names()
            name = port.get_any_name() if names else f"input{index}"
            shape = tuple(d.get_length() if d.is_static else None for d in port.get_partial_shape())
            declared.append(InputSpec(name, shape, np.dtype(port.get_element_type().to_dtype())))
        self.model_inputs = declared
        self._inputs = resolve_input_shapes(declared, batch, shapes)
        if any(d.shape != r.shape for d, r in zip(declared, self._inputs)):
            # Static shapes let the CPU plugin pick its best kernels.
            model.reshape({r.name: self._ov.PartialShape(list(r.shape)) for r in self._inputs})
        self._model = model
        self._quantized = any(op.get_type_name() == "FakeQuantize" for op in model.get_ordered_ops())
        self._compiled = self._compile(perf_count=False)
        self._request = self._compiled.create_infer_request()
        self._output_names = [
            port.get_any_name() if port.get_names() else f"output{i}"
            for i, port in enumerate(self._compiled.outputs)
        ]

    def _compile(self, perf_count: bool) -> Any:
        config = self.settings.compile_config()
        if perf_count:
            config["PERF_COUNT"] = True
        try:
            return self._core.compile_model(self._model, self.settings.device, config)
        except Exception as err:
            raise RunnerError(
                f"{self.path}: OpenVINO cannot compile this model for {self.settings.device} "
                f"with {config}: {err}"
            ) from None

    @property
    def inputs(self) -> list[InputSpec]:
        return list(self._inputs)

    @property
    def output_names(self) -> list[str]:
        return list(self._output_names)

    def run(self, feeds: Feeds) -> list[np.ndarray]:
        result = self._request.infer(feeds)
        return [result[port] for port in self._compiled.outputs]

    def _property(self, key: str, default: Any = None) -> Any:
        try:
            return self._compiled.get_property(key)
        except Exception:  # not every device exposes every property
            return default

    def describe(self) -> dict[str, Any]:
        devices = self._property("EXECUTION_DEVICES", [self.settings.device])
        device = devices[0] if devices else self.settings.device
        try:
            full_name = self._core.get_property(device, "FULL_DEVICE_NAME")
        except Exception:
            full_name = device
        precision = _precision_name(self._property("INFERENCE_PRECISION_HINT", "unknown"))
        return {
            "runtime": self.runtime,
            "runtime_version": self._ov.__version__,
            "device": device,
            "device_name": full_name,
            "threads": self._property("INFERENCE_NUM_THREADS", self.settings.threads),
            "streams": self._property("NUM_STREAMS", self.settings.streams),
            "performance_hint": str(self._property("PERFORMANCE_HINT", self.settings.performance_hint)),
            "precision": f"int8/{precision}" if self._quantized else precision,
            "quantized": self._quantized,
            "settings": settings_dict(self.settings),
        }

    def profile_layers(self, pool: Sequence[Feeds], runs: int, warmup: int) -> list[LayerSample]:
        """Per-node times from OpenVINO's perf counters (``PERF_COUNT``), warm-up runs excluded."""
        compiled = self._compile(perf_count=True)
        request = compiled.create_infer_request()
        totals: dict[str, list[Any]] = {}  # node -> [op, exec_type, total_us]
        for i in range(warmup + runs):
            request.infer(pool[i % len(pool)])
            if i < warmup:
                continue
            for info in request.get_profiling_info():
                if info.status != info.Status.EXECUTED:
                    continue
                entry = totals.setdefault(info.node_name, [info.node_type, info.exec_type, 0.0])
                entry[2] += info.real_time.total_seconds() * 1e6
        return [LayerSample(node, op, total, runs, exec_type) for node, (op, exec_type, total) in totals.items()]

    def close(self) -> None:
        self._request = None
        self._compiled = None
