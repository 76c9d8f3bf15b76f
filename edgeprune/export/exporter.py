"""``export_model``: torch model -> model.onnx and/or OpenVINO IR + export.json, parity-checked.

    result = export_model(model, (1, 1, 28, 28), "out/", preprocess=FASHION_MNIST,
                          metadata={"edgeprune.spec": "edgeprune:resnet20"})

Everything is built in a staging folder beside ``out_dir`` and moved in only after torch,
ONNX Runtime and OpenVINO agree; a failed export leaves ``out_dir`` as it was.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from edgeprune import __version__
from edgeprune.export.options import (
    IR_BIN_FILE,
    IR_XML_FILE,
    ONNX_FILE,
    REPORT_FILE,
    ExportError,
    ExportOptions,
    ExportParityError,
)
from edgeprune.models.preprocess import Preprocess


@dataclass
class ExportResult:
    """Where the artifacts went and what export.json says about them."""

    out_dir: Path
    files: dict[str, Path]  # "onnx", "openvino_xml", "openvino_bin", "report" -> path
    report: dict[str, Any]


def check_dependencies(options: ExportOptions) -> None:
    """MissingDependencyError (with the pip extra) before any work, for every package needed."""
    from edgeprune.runtime.base import require

    require("onnx", "onnx")  # every path goes through ONNX
    if "onnx" in options.formats:
        require("onnxruntime", "ort")  # parity of model.onnx
    if "openvino" in options.formats:
        require("openvino", "openvino")


def export_model(
    model: Any,
    input_shape: Sequence[int],
    out_dir: str | Path,
    *,
    preprocess: Preprocess,
    metadata: Mapping[str, str] | None = None,
    options: ExportOptions = ExportOptions(),
    opener: Callable[..., Any] | None = None,
    classes: Sequence[str] | None = None,
) -> ExportResult:
    """Export ``model`` to ``options.formats`` in ``out_dir``, checked against torch.

    Args:
        model: an nn.Module (put in eval mode for the export, its mode restored afterwards).
        input_shape: NCHW shape; C, H, W are fixed in the graph, N is the trace batch (the
            graph's batch is dynamic unless ``options.batch`` fixes it).
        out_dir: destination folder (created; existing files of a previous export replaced
            only on success).
        preprocess: mean/std the model expects; stored as ``edgeprune.preprocess``.
        metadata: more ``edgeprune.*`` metadata_props (spec, plan_fingerprint, budget, ...).
            FLOPs, params, preprocess and version are computed here.
        options: formats, opset, batch, fp16, tolerances.
        opener: runner factory for the parity check (default ``edgeprune.runtime.open_runner``).
        classes: the model's class names, for the folder's manifest.json (None when unknown).

    Raises:
        ExportError: bad options, unexportable model; ExportParityError: a runtime disagrees
            with torch beyond tolerance. Nothing is written in either case.
        MissingDependencyError: onnx / onnxruntime / openvino missing (with the pip command).
    """
    import torch

    from edgeprune.export.onnx import export_onnx, onnx_opset, simplify_onnx
    from edgeprune.export.parity import ParityTarget, check_parity
    from edgeprune.export.staging import Staging
    from edgeprune.files.onnx_metadata import write_metadata
    from edgeprune.pruning.graph import count_flops_params

    start = time.perf_counter()
    options.validate()
    check_dependencies(options)
    shape = _export_shape(input_shape, options)
    preprocess.check_channels(shape)
    graph_shape: list[Any] = ["batch" if options.dynamic_batch else shape[0], *shape[1:]]
    was_training = model.training
    model.eval()
    try:
        flops, params = count_flops_params(model, shape)  # MACs per sample; also a forward check
        props = {
            "edgeprune.version": __version__,
            "edgeprune.flops": str(int(flops)),
            "edgeprune.params": str(int(params)),
            "edgeprune.preprocess": preprocess.to_metadata(graph_shape),
        }
        props.update(_check_metadata(metadata or {}))
        timings: dict[str, float] = {}
        with Staging(out_dir) as stage:
            tmp = stage.path
            assert tmp is not None
            t = time.perf_counter()
            example = torch.randn(*shape)  # [N, C, H, W]; values do not matter for tracing
            tracer_warnings = export_onnx(model, example, tmp / ONNX_FILE, opset=options.opset,
                                          dynamic_batch=options.dynamic_batch, exporter=options.exporter)
            timings["onnx_export_s"] = time.perf_counter() - t
            t = time.perf_counter()
            if options.simplify:
                simplified = simplify_onnx(tmp / ONNX_FILE)
            else:
                from edgeprune.export.onnx import SimplifyOutcome

                simplified = SimplifyOutcome(False, "simplification turned off", None)
            write_metadata(tmp / ONNX_FILE, props)
            timings["simplify_s"] = time.perf_counter() - t
            targets, published = [], []
            if "onnx" in options.formats:
                targets.append(ParityTarget("ort", tmp / ONNX_FILE, options.rtol))
                published.append(ONNX_FILE)
            ov_version = None
            if "openvino" in options.formats:
                from edgeprune.export.openvino import convert_to_ir

                t = time.perf_counter()
                ov_version = convert_to_ir(tmp / ONNX_FILE, tmp / IR_XML_FILE, fp16=options.fp16, metadata=props)
                timings["openvino_convert_s"] = time.perf_counter() - t
                rtol = options.fp16_rtol if options.fp16 else options.rtol
                targets.append(ParityTarget("openvino", tmp / IR_XML_FILE, rtol))
                published += [IR_XML_FILE, IR_BIN_FILE]
            t = time.perf_counter()
            parity = check_parity(model, targets, shape, options.parity_batches, options.seeds, opener)
            timings["parity_s"] = time.perf_counter() - t
            failed = [p for p in parity if not p.ok]
            if failed:
                raise ExportParityError(_parity_message(failed, Path(out_dir)))
            files = [_file_entry(tmp / name, name) for name in published]
            report = {
                "edgeprune_version": __version__,
                "spec": props.get("edgeprune.spec"),
                "input_shape": graph_shape,
                "formats": list(options.formats),
                "options": options.to_json(),
                "exporter": options.exporter,
                "tracer_warnings": tracer_warnings,
                "opset": onnx_opset(tmp / ONNX_FILE),
                "simplified": simplified.simplified,
                "simplify_reason": simplified.reason,
                "fp16_weights": options.fp16,
                "flops": int(flops),
                "params": int(params),
                "preprocess": preprocess.to_json(graph_shape) | {"name": preprocess.name},
                "metadata": props,
                "files": files,
                "parity": {p.runtime: p.to_json() for p in parity},
                "openvino_precision": next((p.runner.get("precision") for p in parity if p.runtime == "openvino"), None),
                "versions": _versions(simplified.onnxsim_version, ov_version),
                "timings_s": {k: round(v, 3) for k, v in timings.items()},
            }
            report["timings_s"]["total_s"] = round(time.perf_counter() - start, 3)
            from edgeprune.files.atomic import write_json
            from edgeprune.files.manifest import MANIFEST, preprocess_record, write_manifest

            write_json(tmp / REPORT_FILE, report)
            write_manifest(tmp, "export", [*published, REPORT_FILE], spec=props.get("edgeprune.spec"),
                           input_shape=graph_shape, classes=classes, settings=options.to_json(),
                           preprocess=preprocess_record(preprocess.mean, preprocess.std, preprocess.name))
            paths = stage.publish([*published, REPORT_FILE], marker=MANIFEST)
    finally:
        model.train(was_training)
    roles = {ONNX_FILE: "onnx", IR_XML_FILE: "openvino_xml", IR_BIN_FILE: "openvino_bin", REPORT_FILE: "report"}
    return ExportResult(Path(out_dir), {roles[p.name]: p for p in paths if p.name in roles}, report)


def _export_shape(input_shape: Sequence[int], options: ExportOptions) -> tuple[int, ...]:
    shape = tuple(int(d) for d in input_shape)
    if len(shape) != 4 or any(d < 1 for d in shape):
        raise ExportError(f"input shape must be NCHW with positive sizes, got {list(input_shape)}")
    if options.batch is not None:
        shape = (options.batch, *shape[1:])
    return shape


def _check_metadata(metadata: Mapping[str, Any]) -> dict[str, str]:
    out = {}
    for key, value in metadata.items():
        if not isinstance(key, str) or not key.startswith("edgeprune."):
            raise ExportError(f"metadata key {key!r} must be a string starting with 'edgeprune.'")
        if value is not None:
            out[key] = value if isinstance(value, str) else str(value)
    return out


def _parity_message(failed: Sequence[Any], out_dir: Path) -> str:
    parts = []
    for p in failed:
        at = f" at batch {p.worst.get('batch')} seed {p.worst.get('seed')}" if p.worst else ""
        parts.append(
            f"{p.runtime} ({p.file}) differs from torch by {p.rel_diff:.2e} relative "
            f"(max abs {p.max_abs_diff:.2e}){at}, above the tolerance {p.rtol:g}"
        )
    return "export parity failed: " + "; ".join(parts) + f"; nothing was written to {out_dir}"


def _file_entry(path: Path, name: str) -> dict[str, Any]:
    from edgeprune.files.hashing import sha256_file

    fmt = "onnx" if name.endswith(".onnx") else "openvino"
    return {"path": name, "format": fmt, "bytes": path.stat().st_size, "sha256": sha256_file(path)}


def _versions(onnxsim_version: str | None, openvino_version: str | None) -> dict[str, str | None]:
    import onnx
    import torch

    try:
        import onnxruntime

        ort_version = onnxruntime.__version__
    except ImportError:
        ort_version = None
    return {
        "torch": torch.__version__,
        "onnx": onnx.__version__,
        "onnxsim": onnxsim_version,
        "onnxruntime": ort_version,
        "openvino": openvino_version,
    }
