"""What the quantizer writes besides the QDQ graph: the file's ``edgeprune.*`` metadata, the
``quantize.json`` report, and the folder's ``manifest.json``, published last."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from edgeprune.quant.config import QuantizeConfig

ONNX_FILE = "model.onnx"
IR_XML_FILE = "model.xml"
IR_BIN_FILE = "model.bin"
REPORT_FILE = "quantize.json"
ROLES = {ONNX_FILE: "onnx", IR_XML_FILE: "openvino", IR_BIN_FILE: "openvino_bin", REPORT_FILE: "report",
         "manifest.json": "manifest"}


def settings_record(config: QuantizeConfig, code_bits: int) -> dict[str, Any]:
    """The resolved settings, as the report and the ``edgeprune.quant`` metadata give them."""
    return {
        "method": config.method, "weight_bits": config.weight_bits, "act_bits": config.act_bits,
        "bias_correction": config.bias_correction, "bit_allocation": config.bit_allocation_enabled,
        "real_int8": config.real_int8, "weight_code_bits": code_bits,
    }


def stamp_metadata(source: Path, path: Path, quant: dict[str, Any]) -> None:
    """Copy the fp32 model's ``edgeprune.*`` metadata (preprocess, spec, flops) into ``path``
    and add ``edgeprune.quant``."""
    from edgeprune.files.onnx_metadata import edgeprune_metadata, write_metadata

    props = edgeprune_metadata(source)
    props["edgeprune.quant"] = json.dumps(quant, separators=(", ", ": "))
    write_metadata(path, props)


def execution_text(config: QuantizeConfig, code_bits: int) -> str:
    """How the file runs: real int8 kernels, or simulated (and how)."""
    if config.real_int8:
        return ("real int8: QDQ (uint8 activations, int8 per-channel weights"
                + (f" on {code_bits}-bit codes (reduce range)" if code_bits < config.weight_bits else "")
                + ") run by the runtimes' int8 kernels")
    return (
        "simulated: "
        + (f"weights on a {code_bits}-bit grid stored as int8 codes; " if code_bits < 8 else "")
        + ("uint4 activations via QuantizeLinear/DequantizeLinear (ONNX Runtime dequantizes and runs float "
           "kernels; open it with graph optimizations disabled, since ORT would fuse the QDQ into "
           "QLinearConv, which has no uint4 kernel)" if config.act_bits == 4 else "8-bit activations on int8 kernels")
        + "; numbers are exact for this bit width, latency is not"
    )


def build_report(
    model_path: Path,
    qdq: Path,
    config: QuantizeConfig,
    code_bits: int,
    *,
    rr: Any,
    calset: Any,
    ranges: dict[str, Any],
    layers: list[dict[str, Any]],
    evaluation: dict[str, Any],
    openvino: dict[str, Any] | None,
    published: list[str],
    timings: dict[str, float],
) -> dict[str, Any]:
    """The quantize.json report (``timings`` in seconds; ``published``: the model files)."""
    from edgeprune import __version__
    from edgeprune.quant.evaluate import kernel_warnings

    summary, left_float = graph_record(qdq)
    return {
        "edgeprune_version": __version__,
        "model": str(model_path),
        **settings_record(config, code_bits),
        "simulated": not config.real_int8,
        "execution": execution_text(config, code_bits),
        "reduce_range": rr.to_json(),
        "calibration": calset.describe(),
        "activation_ranges": ranges,
        "weights": {"scheme": "symmetric per output channel, zero point 0",
                    "clip": "ACIQ" if config.method == "aciq" else "max |w|", "layers": layers},
        "graph": summary,
        "ops_left_in_float": left_float,
        "evaluation": evaluation,
        "sqnr_db": evaluation.get("sqnr_db"),
        "top1_agreement": evaluation.get("top1_agreement"),
        "warnings": kernel_warnings(evaluation, rr, config.real_int8),
        "openvino": openvino,
        "versions": versions(),
        "timings_s": {k: round(v, 3) for k, v in timings.items()},
        "files": [{"path": name} for name in published],
    }


def graph_record(qdq: Path) -> tuple[dict[str, Any], dict[str, int]]:
    """(Q/DQ and integer-weight counts, op types left in float) of the written QDQ file."""
    import onnx

    from edgeprune.quant.qdq import float_ops, graph_summary

    model = onnx.load(str(qdq))
    return graph_summary(model), float_ops(model)


def versions() -> dict[str, str | None]:
    import importlib.metadata as md

    import onnx
    import onnxruntime

    try:
        ov = md.version("openvino")
    except Exception:  # noqa: BLE001
        ov = None
    return {"onnx": onnx.__version__, "onnxruntime": onnxruntime.__version__, "openvino": ov}


def jsonable(obj: Any) -> Any:
    """numpy scalars as Python numbers, non-finite floats as strings."""
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, float) and not np.isfinite(obj):
        return str(obj)
    return obj


def publish(
    stage: Any,
    report: dict[str, Any],
    published: list[str],
    *,
    config: QuantizeConfig,
    reduce_range_enabled: bool,
    calset: Any,
    upstream: Any,
) -> list[Path]:
    """Write quantize.json and manifest.json into the staging folder and publish the folder,
    the manifest last. ``upstream``: the input model's manifest (None for a user's own file)."""
    from edgeprune.files.atomic import write_json
    from edgeprune.files.manifest import MANIFEST, preprocess_record, write_manifest
    from edgeprune.files.onnx_metadata import edgeprune_metadata

    assert stage.path is not None
    write_json(stage.path / REPORT_FILE, jsonable(report))
    files = [*published, REPORT_FILE]
    source = (upstream.preprocess or {}).get("source") if upstream is not None else None
    write_manifest(
        stage.path, "quantize", files,
        spec=edgeprune_metadata(stage.path / ONNX_FILE).get("edgeprune.spec"),
        input_shape=["batch" if d is None else int(d) for d in calset.model.shape],
        preprocess=preprocess_record(calset.model.mean, calset.model.std, source or calset.model.preprocess_source),
        classes=upstream.classes if upstream is not None else None,
        settings={**config.to_json(), "reduce_range_enabled": reduce_range_enabled},
    )
    return stage.publish(files, marker=MANIFEST)
