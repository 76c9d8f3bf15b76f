"""``quantize_onnx``: fp32 ONNX + calibration manifest -> QDQ int8 ONNX (+ OpenVINO IR) +
quantize.json + manifest.json.

    from edgeprune.quant import QuantizeConfig, quantize_onnx
    result = quantize_onnx("runs/x/model.onnx", "calibration/fashion-mnist.toml", "runs/x/int8",
                           QuantizeConfig(method="aciq", bias_correction="data"))
    result.files["onnx"], result.report["sqnr_db"]

Methods. ``aciq``: activation ranges from the ACIQ clipping value of a Laplace/Gaussian
fit per tensor (one-sided after ReLU), weights clipped per output channel at their ACIQ
value. ``minmax`` / ``entropy`` / ``percentile``: activation ranges from onnxruntime's
own calibrators (their defaults, as ``quantize_static`` would use them), weights per
output channel at max |w| (what ORT's per-channel quantizer does itself).

Bit widths. W8A8 runs as real int8 (QDQ: uint8 activations, int8 per-channel weights; ONNX
Runtime fuses it into its int8 kernels, OpenVINO into u8/i8 layers). Below 8 bits neither
runtime has kernels on this CPU, so those settings are *simulated*: weights on an M-bit grid
(codes within +-(2^(M-1)-1), optionally with per-channel bit allocation) are stored as int8
codes, and 4-bit activations are uint4 QuantizeLinear/DequantizeLinear (opset 21), which ONNX
Runtime executes as quantize -> dequantize -> float kernels. The numbers are exactly those of
an M-bit model; the latency is not. ``report["real_int8"]`` says which case a file is.

The steps live in their own modules: statistics (stats), weights (weights), activation
ranges (ranges), the accuracy checks (evaluate), metadata, report and manifest (writing).
Nothing is written unless everything succeeded (staged folder, published atomically).
"""

from __future__ import annotations

import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgeprune.quant.config import ACT_BITS, METHODS, QuantizeConfig
from edgeprune.quant.qdq import QuantError
from edgeprune.quant.writing import (
    IR_BIN_FILE,
    IR_XML_FILE,
    ONNX_FILE,
    REPORT_FILE,
    ROLES,
)

__all__ = ["ACT_BITS", "IR_BIN_FILE", "IR_XML_FILE", "METHODS", "ONNX_FILE", "REPORT_FILE", "QuantResult",
           "quantize_onnx"]


@dataclass
class QuantResult:
    """Where the artifacts went ("onnx", "openvino", "openvino_bin", "report", "manifest") and the report."""

    out_dir: Path
    files: dict[str, Path]
    report: dict[str, Any]


def quantize_onnx(
    model_path: str | os.PathLike,
    calib: str | os.PathLike,
    out_dir: str | os.PathLike,
    config: QuantizeConfig = QuantizeConfig(),  # noqa: B008 - frozen, so one shared default is safe
    *,
    progress: bool = True,
) -> QuantResult:
    """Quantize the fp32 ONNX model at ``model_path`` with the calibration manifest ``calib``
    into ``out_dir`` (model.onnx, model.xml + model.bin when OpenVINO is on, quantize.json,
    manifest.json), with the settings ``config`` (see QuantizeConfig).

    Raises:
        QuantError: bad settings (names the field), an op that cannot be quantized (named),
            calibration failures.
        ArtifactError: the model lies in an export folder whose files do not match its manifest.
        CalibrationError: bad manifest, empty calibration set, images that do not fit the input.
        MissingDependencyError: onnx / onnxruntime (or foolbox for its images) missing.
    """
    from edgeprune.export.staging import Staging
    from edgeprune.quant.calibration import open_calibration
    from edgeprune.quant.evaluate import check_openvino, evaluate, wants_openvino
    from edgeprune.quant.reduce_range import resolve_reduce_range
    from edgeprune.quant.weights import quantize_weights
    from edgeprune.quant.writing import build_report, publish

    start = time.perf_counter()
    errors = config.errors()
    if errors:
        field, message = next(iter(errors.items()))
        raise QuantError(f"{field}: {message}")
    rr = resolve_reduce_range(config.reduce_range, target=config.target)
    code_bits = min(config.weight_bits, rr.max_weight_bits())
    model_path = Path(model_path)
    model, layers, upstream = _open_model(model_path)
    calset = open_calibration(calib, model_path)
    timings: dict[str, float] = {}
    stats = _statistics(model_path, layers, calset, config, progress, timings)
    t = time.perf_counter()
    overrides, layer_reports = quantize_weights(model, layers, config, code_bits, rr.max_weight_bits(), stats)
    timings["weights_s"] = time.perf_counter() - t
    with tempfile.TemporaryDirectory(prefix="edgeprune-quant-") as tmp, Staging(out_dir) as stage:
        assert stage.path is not None
        qdq = stage.path / ONNX_FILE
        ranges = _write_qdq(model, model_path, qdq, Path(tmp), overrides, config, code_bits, rr, stats, calset,
                            progress, timings)
        t = time.perf_counter()
        evaluation, logits = evaluate(model_path, qdq, calset, config.act_bits)
        timings["evaluate_s"] = time.perf_counter() - t
        published, ov_report = [ONNX_FILE], None
        if wants_openvino(config.openvino, config.real_int8):
            t = time.perf_counter()
            ov_report = check_openvino(qdq, stage.path / IR_XML_FILE, calset, logits)
            timings["openvino_s"] = time.perf_counter() - t
            published += [IR_XML_FILE, IR_BIN_FILE]
        report = build_report(model_path, qdq, config, code_bits, rr=rr, calset=calset, ranges=ranges,
                              layers=layer_reports, evaluation=evaluation, openvino=ov_report,
                              published=published, timings=timings)
        report["timings_s"]["total_s"] = round(time.perf_counter() - start, 3)
        paths = publish(stage, report, published, config=config, reduce_range_enabled=rr.enabled, calset=calset,
                        upstream=upstream)
    return QuantResult(Path(out_dir), {ROLES[p.name]: p for p in paths}, report)


def _open_model(model_path: Path) -> tuple[Any, list[Any], Any]:
    """(the loaded model, its weighted layers, its export folder's verified manifest or None)."""
    from edgeprune.files.manifest import manifest_of_file
    from edgeprune.quant.qdq import check_ops, weighted_layers
    from edgeprune.runtime.base import require

    onnx = require("onnx", "onnx")
    require("onnxruntime", "ort")
    if not model_path.is_file():
        raise QuantError(f"model file {str(model_path)!r} does not exist")
    upstream = manifest_of_file(model_path, kinds=("export",))
    model = onnx.load(str(model_path))
    check_ops(model, str(model_path))
    layers = weighted_layers(model)
    if not layers:
        raise QuantError(f"{model_path}: no Conv or Gemm layer with constant weights: nothing to quantize")
    return model, layers, upstream


def _statistics(model_path: Path, layers: list[Any], calset: Any, config: QuantizeConfig, progress: bool,
                timings: dict[str, float]) -> dict[str, Any] | None:
    """Activation statistics (ACIQ fits, bias-correction mean maps), when the settings need them."""
    if config.method != "aciq" and not config.bias_correction:
        return None
    from edgeprune.quant.stats import collect

    t = time.perf_counter()
    stats = collect(model_path, calset.batches("calibration"), calset.num_batches("calibration"),
                    mean_map_tensors=[layer.input for layer in layers] if config.bias_correction else (),
                    seed=config.seed, progress=progress)
    timings["statistics_s"] = time.perf_counter() - t
    return stats


def _write_qdq(model, model_path, qdq, tmp, overrides, config, code_bits, rr, stats, calset, progress, timings):
    """Activation ranges, then onnxruntime's QDQ quantizer into ``qdq`` (stamped with our
    metadata); returns what the report says about the ranges."""
    import onnx

    from edgeprune.quant.qdq import ort_quantize
    from edgeprune.quant.ranges import calibration_cache
    from edgeprune.quant.writing import settings_record, stamp_metadata

    prepared = tmp / "prepared.onnx"
    onnx.save(model, str(prepared))
    t = time.perf_counter()
    cache, method, info = calibration_cache(config, stats, calset, prepared, tmp, progress)
    timings["ranges_s"] = time.perf_counter() - t
    t = time.perf_counter()
    try:
        ort_quantize(str(prepared), str(qdq), str(cache), method, overrides, config.act_bits)
    except Exception as err:  # noqa: BLE001 - ORT's message names the tensor / node
        raise QuantError(f"onnxruntime could not quantize {model_path}: {type(err).__name__}: {err}") from None
    timings["qdq_s"] = time.perf_counter() - t
    stamp_metadata(model_path, qdq, {**settings_record(config, code_bits), "reduce_range": rr.enabled})
    return info
