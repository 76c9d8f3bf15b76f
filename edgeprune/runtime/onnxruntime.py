"""ONNX Runtime backend, and `ort_session` for plain CPU sessions (the quantizer's).
``onnxruntime`` is imported inside the functions that use it."""

from __future__ import annotations

import json
import os
import tempfile
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
    check_model_file,
    check_positive_int,
    check_str,
    register_runtime,
    require,
    resolve_input_shapes,
    settings_dict,
    usable_cpus,
)

GRAPH_OPTIMIZATION = {
    "disable": "ORT_DISABLE_ALL",
    "basic": "ORT_ENABLE_BASIC",
    "extended": "ORT_ENABLE_EXTENDED",
    "layout": "ORT_ENABLE_LAYOUT",  # not in older releases; falls back to "all" there
    "all": "ORT_ENABLE_ALL",
}

_ORT_DTYPES = {
    "tensor(float)": np.float32,
    "tensor(float16)": np.float16,
    "tensor(double)": np.float64,
    "tensor(int8)": np.int8,
    "tensor(uint8)": np.uint8,
    "tensor(int16)": np.int16,
    "tensor(int32)": np.int32,
    "tensor(int64)": np.int64,
    "tensor(bool)": np.bool_,
}

# Op types that mean the graph computes (partly) in int8.
QUANTIZED_OPS = frozenset(
    {"QuantizeLinear", "DequantizeLinear", "QLinearConv", "QLinearMatMul", "ConvInteger",
     "MatMulInteger", "DynamicQuantizeLinear", "QGemm", "QLinearAdd"}
)


@dataclass(frozen=True)
class OrtSettings:
    """ONNX Runtime session settings.

    Attributes:
        threads: intra-op threads; None means every usable core (the number is still reported).
        inter_op_threads: threads across independent nodes (only matter in parallel mode).
        execution_provider: e.g. CPUExecutionProvider, CUDAExecutionProvider.
        graph_optimization: disable | basic | extended | layout | all.
        allow_spinning: intra-op threads spin between calls (ORT's default). Timing several
            sessions interleaved turns it off (`edgeprune.profile.compare`): the idle session's
            spinning pool would steal the cores of the one being timed (2 threads on 2 vCPUs:
            resnet18 46 / 27 ms interleaved with spinning vs 24 / 14 ms without, the same as
            each alone with spinning).
    """

    threads: int | None = None
    inter_op_threads: int = 1
    execution_provider: str = "CPUExecutionProvider"
    graph_optimization: str = "all"
    allow_spinning: bool = True

    def validate(self, where: str = "settings") -> None:
        check_positive_int(where, "threads", self.threads, optional=True)
        check_positive_int(where, "inter_op_threads", self.inter_op_threads)
        check_str(where, "execution_provider", self.execution_provider)
        check_choice(where, "graph_optimization", self.graph_optimization, list(GRAPH_OPTIMIZATION))
        if not isinstance(self.allow_spinning, bool):
            raise RunnerError(f"{where}.allow_spinning must be true or false; got {self.allow_spinning!r}")


def onnx_precision(path: str | os.PathLike, inputs: Sequence[InputSpec]) -> tuple[str, bool]:
    """(float precision, quantized?) of an ONNX file; reads op types when ``onnx`` is installed."""
    floats = [i.dtype for i in inputs if np.issubdtype(i.dtype, np.floating)]
    precision = {np.dtype(np.float16): "f16", np.dtype(np.float64): "f64"}.get(
        floats[0] if floats else np.dtype(np.float32), "f32"
    )
    quantized = False
    try:
        import onnx
    except ImportError:
        return precision, quantized
    try:
        model = onnx.load(str(path), load_external_data=False)
        quantized = any(n.op_type in QUANTIZED_OPS for n in model.graph.node)
    except Exception:  # an unreadable file was already reported by the runtime
        pass
    return precision, quantized


def ort_session(model: str | os.PathLike | bytes, *, threads: int = 1, optimize: bool = True) -> Any:
    """A CPU InferenceSession on a file or a serialized model, with ``threads`` intra-op threads
    and ORT's warnings silenced; ``optimize=False`` turns graph optimizations off (uint4 QDQ,
    which ORT would otherwise fuse into kernels it does not have)."""
    ort = require("onnxruntime", "ort")
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.log_severity_level = 3
    if not optimize:
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    source = model if isinstance(model, bytes) else str(model)
    return ort.InferenceSession(source, options, providers=["CPUExecutionProvider"])


def _providers_device(provider: str) -> str:
    if provider.startswith("CPU"):
        return "CPU"
    if provider.startswith(("CUDA", "Tensorrt", "ROCM", "MIGraphX", "Dml")):
        return "GPU"
    if provider.startswith(("QNN", "VitisAI")):
        return "NPU"
    return provider.removesuffix("ExecutionProvider")


@register_runtime("ort", settings=OrtSettings, package="onnxruntime", extra="ort", aliases=("onnxruntime",))
class OrtRunner:
    """An ONNX Runtime InferenceSession behind the Runner protocol."""

    runtime = "ort"

    def __init__(
        self,
        path: str | os.PathLike,
        settings: OrtSettings | None = None,
        *,
        batch: int | None = None,
        shapes: Mapping[str, Sequence[int]] | None = None,
    ) -> None:
        self.path = check_model_file(path)
        self.settings = settings or OrtSettings()
        self.settings.validate()
        self._ort = require("onnxruntime", "ort")
        available = self._ort.get_available_providers()
        if self.settings.execution_provider not in available:
            raise RunnerError(
                f"ONNX Runtime execution provider {self.settings.execution_provider!r} is not "
                f"available here; available: {', '.join(available)}"
            )
        self.threads = self.settings.threads or usable_cpus()
        self._session = self._open_session(profile_dir=None)
        declared = []
        for i in self._session.get_inputs():
            if i.type not in _ORT_DTYPES:
                raise SpecError(f"input {i.name!r} has type {i.type}, which edgeprune cannot feed")
            dims = tuple(d if isinstance(d, int) else (d or None) for d in i.shape)  # str: symbolic
            declared.append(InputSpec(i.name, dims, np.dtype(_ORT_DTYPES[i.type])))
        self.model_inputs = declared
        self._inputs = resolve_input_shapes(declared, batch, shapes)
        self._output_names = [o.name for o in self._session.get_outputs()]
        self._precision: tuple[str, bool] | None = None

    def _session_options(self) -> Any:
        ort = self._ort
        so = ort.SessionOptions()
        so.intra_op_num_threads = self.threads
        so.inter_op_num_threads = self.settings.inter_op_threads
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        if not self.settings.allow_spinning:
            so.add_session_config_entry("session.intra_op.allow_spinning", "0")
        level = GRAPH_OPTIMIZATION[self.settings.graph_optimization]
        if not hasattr(ort.GraphOptimizationLevel, level):
            level = "ORT_ENABLE_ALL"
        so.graph_optimization_level = getattr(ort.GraphOptimizationLevel, level)
        return so

    def _open_session(self, profile_dir: str | None) -> Any:
        so = self._session_options()
        if profile_dir is not None:
            so.enable_profiling = True
            so.profile_file_prefix = os.path.join(profile_dir, "ort_profile")
        try:
            return self._ort.InferenceSession(
                str(self.path), sess_options=so, providers=[self.settings.execution_provider]
            )
        except Exception as err:  # ORT raises its own pybind exception types
            raise SpecError(f"{self.path}: ONNX Runtime cannot load this model: {err}") from None

    @property
    def inputs(self) -> list[InputSpec]:
        return list(self._inputs)

    @property
    def output_names(self) -> list[str]:
        return list(self._output_names)

    def metadata(self) -> dict[str, str]:
        """The model's ONNX ``metadata_props`` (e.g. ``edgeprune.flops``)."""
        return dict(self._session.get_modelmeta().custom_metadata_map)

    def run(self, feeds: Feeds) -> list[np.ndarray]:
        return self._session.run(None, feeds)

    def describe(self) -> dict[str, Any]:
        if self._precision is None:
            self._precision = onnx_precision(self.path, self._inputs)
        precision, quantized = self._precision
        provider = self._session.get_providers()[0]
        return {
            "runtime": self.runtime,
            "runtime_version": self._ort.__version__,
            "device": _providers_device(provider),
            "execution_provider": provider,
            "threads": self.threads,
            "inter_op_threads": self.settings.inter_op_threads,
            "graph_optimization": self.settings.graph_optimization,
            "precision": f"int8/{precision}" if quantized else precision,
            "quantized": quantized,
            "settings": settings_dict(self.settings),
        }

    def profile_layers(self, pool: Sequence[Feeds], runs: int, warmup: int) -> list[LayerSample]:
        """Per-node kernel times from ORT's profiler (``enable_profiling``), warm-up runs excluded."""
        from edgeprune.profile.layers import parse_ort_trace

        with tempfile.TemporaryDirectory(prefix="edgeprune-ort-") as tmp:
            session = self._open_session(profile_dir=tmp)
            for i in range(warmup + runs):
                session.run(None, pool[i % len(pool)])
            trace_path = session.end_profiling()
            with open(trace_path, encoding="utf-8") as f:
                events = json.load(f)
        return parse_ort_trace(events, runs)

    def close(self) -> None:
        self._session = None
