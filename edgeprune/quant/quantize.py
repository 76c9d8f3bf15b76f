"""``quantize_onnx``: fp32 ONNX + calibration manifest -> QDQ int8 ONNX (+ OpenVINO IR) + quantize.json.

    from edgeprune.quant import quantize_onnx
    result = quantize_onnx("runs/x/model.onnx", "calibration/fashion-mnist.toml", "runs/x/int8",
                           method="aciq", bias_correction=True)
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

Nothing is written unless everything succeeded (staged folder, published atomically).
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgeprune.quant.qdq import QuantError

METHODS = ("aciq", "minmax", "entropy", "percentile")
ACT_BITS = (4, 8)
DEFAULT_BIAS_CORRECTION = "data"
ONNX_FILE = "model.onnx"
IR_XML_FILE = "model.xml"
IR_BIN_FILE = "model.bin"
REPORT_FILE = "quantize.json"
# onnxruntime's calibrators, with their defaults except one: the Entropy calibrator's defaults
# (num_bins = num_quantized_bins = 128) leave it a single candidate threshold, the full range,
# so it returned exactly MinMax's ranges (checked on resnet20 and EfficientNet-Lite0). 2048
# histogram bins into 128 quantized bins is the TensorRT recipe the calibrator implements.
CALIBRATOR_OPTIONS: dict[str, dict[str, Any]] = {"entropy": {"num_bins": 2048, "num_quantized_bins": 128}}


@dataclass
class QuantResult:
    """Where the artifacts went ("onnx", "openvino", "openvino_bin", "report") and the report."""

    out_dir: Path
    files: dict[str, Path]
    report: dict[str, Any]


def _bc_kind(bias_correction: bool | str) -> str | None:
    from edgeprune.quant.bias_correction import KINDS

    if bias_correction is False or bias_correction is None:
        return None
    if bias_correction is True:
        return DEFAULT_BIAS_CORRECTION
    if bias_correction in KINDS:
        return str(bias_correction)
    raise QuantError(f"bias_correction must be True/False or one of {', '.join(KINDS)}, got {bias_correction!r}")


def setting_errors(method: str, weight_bits: int, act_bits: int) -> dict[str, str]:
    """What is wrong with each setting, by name (method, weight_bits, act_bits); empty when fine."""
    errors = {}
    if method not in METHODS:
        errors["method"] = f"unknown quantization method {method!r}; choose from {', '.join(METHODS)}"
    if isinstance(weight_bits, bool) or not isinstance(weight_bits, int) or not 2 <= weight_bits <= 8:
        errors["weight_bits"] = f"weight bits must be an integer from 2 to 8, got {weight_bits!r}"
    if act_bits not in ACT_BITS:
        errors["act_bits"] = f"activation bits must be one of {', '.join(map(str, ACT_BITS))}, got {act_bits!r}"
    return errors


def check_settings(method: str, weight_bits: int, act_bits: int) -> None:
    errors = setting_errors(method, weight_bits, act_bits)
    if errors:
        raise QuantError(next(iter(errors.values())))


def quantize_onnx(
    model_path: str | os.PathLike,
    calib: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    method: str = "aciq",
    weight_bits: int = 8,
    act_bits: int = 8,
    bias_correction: bool | str = False,
    progress: bool = True,
    bit_allocation: bool | None = None,
    openvino: bool | None = None,
    reduce_range: bool | str | None = None,
    seed: int = 0,
) -> QuantResult:
    """Quantize the fp32 ONNX model at ``model_path`` with the calibration manifest ``calib``.

    Args:
        method: aciq | minmax | entropy | percentile.
        weight_bits: 2..8 (per output channel, symmetric). act_bits: 8 or 4 (per tensor, uint).
        bias_correction: False; True (= "data"); or "data" | "mean-var" | "both" (see
            edgeprune.quant.bias_correction).
        bit_allocation: per-channel weight bit allocation under the average ``weight_bits``
            budget (ACIQ, below 8 bits); default on for aciq below 8 bits.
        openvino: also write OpenVINO IR (and check it against ONNX Runtime); default: when
            openvino is installed and the model is real int8.
        reduce_range: weights on 7-bit codes so that x86 int8 kernels without VNNI do not
            saturate (edgeprune.quant.reduce_range): None / "auto" (from this CPU), True / "on",
            False / "off".

    Returns QuantResult(files={"onnx": ..., "openvino": ... (if written), "report": ...}, report).

    Raises:
        QuantError: bad settings, an op that cannot be quantized (named), calibration failures.
        CalibrationError: bad manifest, empty calibration set, images that do not fit the input.
        MissingDependencyError: onnx / onnxruntime (or foolbox for its images) missing.
    """
    from edgeprune.runtime.base import require

    start = time.perf_counter()
    check_settings(method, weight_bits, act_bits)
    from edgeprune.quant.reduce_range import resolve_reduce_range

    rr = resolve_reduce_range(reduce_range)
    code_bits = min(weight_bits, rr.max_weight_bits())
    if openvino and act_bits != 8:
        raise QuantError("OpenVINO IR is written for 8-bit activations only (its CPU plugin has no uint4)")
    bc = _bc_kind(bias_correction)
    onnx = require("onnx", "onnx")
    require("onnxruntime", "ort")
    from edgeprune.export.staging import Staging
    from edgeprune.quant import bias_correction as bcmod
    from edgeprune.quant.calibration import open_calibration
    from edgeprune.quant.qdq import check_ops, weighted_layers

    model_path = Path(model_path)
    if not model_path.is_file():
        raise QuantError(f"model file {str(model_path)!r} does not exist")
    model = onnx.load(str(model_path))
    check_ops(model, str(model_path))
    layers = weighted_layers(model)
    if not layers:
        raise QuantError(f"{model_path}: no Conv or Gemm layer with constant weights: nothing to quantize")
    calset = open_calibration(calib, model_path)
    allocate = (method == "aciq" and weight_bits < 8) if bit_allocation is None else bool(bit_allocation)
    timings: dict[str, float] = {}

    # 1. activation statistics (ACIQ fits, bias-correction mean maps)
    stats = None
    if method == "aciq" or bc:
        from edgeprune.quant.stats import collect

        t = time.perf_counter()
        stats = collect(model_path, calset.batches("calibration"), calset.num_batches("calibration"),
                        mean_map_tensors=[layer.input for layer in layers] if bc else (),
                        seed=seed, progress=progress)
        timings["statistics_s"] = time.perf_counter() - t

    # 2. weights: clip, quantize per output channel, bias-correct; write into a float copy
    t = time.perf_counter()
    from onnx import numpy_helper

    inits = {i.name: i for i in model.graph.initializer}
    overrides: dict[str, list[dict[str, Any]]] = {}
    layer_reports = []
    for layer in layers:
        w = numpy_helper.to_array(inits[layer.weight]).astype(np.float64)
        w_oc = np.moveaxis(w, layer.axis, 0)
        deployed, scales, bits_c, extra = _quantize_weight(w_oc, method, code_bits, allocate, rr.max_weight_bits())
        bias_delta = None
        if bc:
            mean_map = stats[layer.input].mean_map if stats is not None else None
            if mean_map is None:
                raise QuantError(f"no calibration statistics for the input {layer.input!r} of {layer.node.name!r}")
            if bc in ("mean-var", "both"):
                mu, xi = bcmod.mean_var_factors(w_oc, deployed)
                deployed = deployed * xi.reshape((-1,) + (1,) * (w_oc.ndim - 1))
                scales = scales * xi
                extra["xi_range"] = [float(xi.min()), float(xi.max())]
            if bc == "mean-var":
                shift = np.broadcast_to((xi * mu).reshape((-1,) + (1,) * (w_oc.ndim - 1)), w_oc.shape)
                effect = np.moveaxis(shift, 0, layer.axis)
            else:
                effect = np.moveaxis(w_oc - deployed, 0, layer.axis)
            bias_delta = bcmod.expected_output(layer.node, effect, mean_map)
        new_w = np.moveaxis(deployed, 0, layer.axis).astype(np.float32)
        inits[layer.weight].CopyFrom(numpy_helper.from_array(new_w, layer.weight))
        if bias_delta is not None:
            _add_to_bias(model, layer, bias_delta.astype(np.float32), inits)
        overrides[layer.weight] = _overrides(scales, layer.axis)
        layer_reports.append({
            "node": layer.node.name, "op": layer.node.op_type, "channels": int(w_oc.shape[0]),
            "bits": sorted(set(int(b) for b in np.atleast_1d(bits_c))),
            "mean_bits": float(np.mean(bits_c)),
            "weight_sqnr_db": _sqnr(w_oc, deployed),
            "bias_correction_abs_max": None if bias_delta is None else float(np.abs(bias_delta).max()),
            **extra,
        })
    timings["weights_s"] = time.perf_counter() - t

    with tempfile.TemporaryDirectory(prefix="edgeprune-quant-") as tmp_name:
        tmp = Path(tmp_name)
        prepared = tmp / "prepared.onnx"
        onnx.save(model, str(prepared))

        # 3. activation ranges -> ORT calibration cache
        t = time.perf_counter()
        ranges_info: dict[str, Any] = {}
        tensors, method_enum = _activation_ranges(method, act_bits, stats, calset, prepared, tmp, progress,
                                                  ranges_info)
        from onnxruntime.quantization.calibrate import save_tensors_data

        cache = tmp / "ranges.json"
        save_tensors_data(tensors, cache)
        timings["ranges_s"] = time.perf_counter() - t

        # 4. QDQ via onnxruntime's quantizer, in a staging folder beside out_dir
        with Staging(out_dir) as stage:
            assert stage.path is not None
            qdq_path = stage.path / ONNX_FILE
            t = time.perf_counter()
            from edgeprune.quant.qdq import ort_quantize

            try:
                ort_quantize(str(prepared), str(qdq_path), str(cache), method_enum, overrides, act_bits)
            except Exception as err:  # noqa: BLE001 - ORT's message names the tensor / node
                raise QuantError(f"onnxruntime could not quantize {model_path}: {type(err).__name__}: {err}") from None
            timings["qdq_s"] = time.perf_counter() - t
            real_int8 = weight_bits == 8 and act_bits == 8
            settings = {
                "method": method, "weight_bits": weight_bits, "act_bits": act_bits, "bias_correction": bc,
                "bit_allocation": allocate, "real_int8": real_int8, "weight_code_bits": code_bits,
            }
            _stamp_metadata(model_path, qdq_path, {**settings, "reduce_range": rr.enabled})
            from edgeprune.quant.qdq import float_ops, graph_summary

            qmodel = onnx.load(str(qdq_path))
            summary = graph_summary(qmodel)
            left_float = float_ops(qmodel)
            del qmodel

            # 5. accuracy vs fp32 on held-out manifest samples
            t = time.perf_counter()
            evaluation = _evaluate(model_path, qdq_path, calset, act_bits)
            timings["evaluate_s"] = time.perf_counter() - t
            published = [ONNX_FILE]
            ov_report = None
            want_ov = openvino if openvino is not None else (real_int8 and _has_openvino())
            if want_ov:
                t = time.perf_counter()
                ov_report = _openvino(qdq_path, stage.path / IR_XML_FILE, calset, evaluation.pop("_ort_logits"),
                                      evaluation["_fp32_logits"])
                timings["openvino_s"] = time.perf_counter() - t
                published += [IR_XML_FILE, IR_BIN_FILE]
            evaluation.pop("_ort_logits", None)
            evaluation.pop("_fp32_logits", None)
            execution = (
                "real int8: QDQ (uint8 activations, int8 per-channel weights"
                + (f" on {code_bits}-bit codes (reduce range)" if code_bits < weight_bits else "")
                + ") run by the runtimes' int8 kernels"
                if real_int8 else
                "simulated: "
                + (f"weights on a {code_bits}-bit grid stored as int8 codes; " if code_bits < 8 else "")
                + ("uint4 activations via QuantizeLinear/DequantizeLinear (ONNX Runtime dequantizes and runs float "
                   "kernels; open it with graph optimizations disabled, since ORT would fuse the QDQ into "
                   "QLinearConv, which has no uint4 kernel)" if act_bits == 4 else "8-bit activations on int8 kernels")
                + "; numbers are exact for this bit width, latency is not"
            )
            from edgeprune import __version__

            report = {
                "edgeprune_version": __version__,
                "model": str(model_path),
                **settings,
                "simulated": not real_int8,
                "execution": execution,
                "reduce_range": rr.to_json(),
                "calibration": calset.describe(),
                "activation_ranges": ranges_info,
                "weights": {"scheme": "symmetric per output channel, zero point 0",
                            "clip": "ACIQ" if method == "aciq" else "max |w|", "layers": layer_reports},
                "graph": summary,
                "ops_left_in_float": left_float,
                "evaluation": evaluation,
                "sqnr_db": evaluation.get("sqnr_db"),
                "top1_agreement": evaluation.get("top1_agreement"),
                "warnings": _warnings(evaluation, rr, real_int8),
                "openvino": ov_report,
                "versions": _versions(),
                "timings_s": {k: round(v, 3) for k, v in timings.items()},
                "files": [{"path": name} for name in published],
            }
            report["timings_s"]["total_s"] = round(time.perf_counter() - start, 3)
            from edgeprune.files.atomic import write_json

            write_json(stage.path / REPORT_FILE, _jsonable(report))
            paths = stage.publish(published, marker=REPORT_FILE)
    roles = {ONNX_FILE: "onnx", IR_XML_FILE: "openvino", IR_BIN_FILE: "openvino_bin", REPORT_FILE: "report"}
    return QuantResult(Path(out_dir), {roles[p.name]: p for p in paths}, report)


# ---------------------------------------------------------------------------------------


def _quantize_weight(w_oc: np.ndarray, method: str, bits: int, allocate: bool, max_bits: int = 8):
    """(deployed float weights on the grid, per-channel scales, per-channel bits, report extras);
    ``max_bits`` caps the per-channel widths of bit allocation (7 with reduce range)."""
    from edgeprune.quant.aciq import allocate_bits, quantize_symmetric, weight_alphas

    amax = np.abs(w_oc.reshape(w_oc.shape[0], -1)).max(axis=1)
    extra: dict[str, Any] = {}
    bits_c: np.ndarray | int = bits
    if method == "aciq":
        alphas = weight_alphas(w_oc, bits)
        if allocate:
            bits_c = allocate_bits(alphas, bits, min_bits=2, max_bits=max_bits)
            alphas = weight_alphas(w_oc, bits_c)
        extra["clipped_fraction_of_max"] = float(np.mean(alphas / np.where(amax > 0, amax, 1.0)))
    else:
        alphas = amax
    codes, scales = quantize_symmetric(w_oc, alphas, bits_c)
    deployed = codes * scales.reshape((-1,) + (1,) * (w_oc.ndim - 1))
    return deployed, scales, np.broadcast_to(np.asarray(bits_c), (w_oc.shape[0],)), extra


def _overrides(scales: np.ndarray, axis: int) -> list[dict[str, Any]]:
    from edgeprune.quant.qdq import weight_overrides

    return weight_overrides(scales, axis)


def _add_to_bias(model: Any, layer: Any, delta: np.ndarray, inits: dict[str, Any]) -> None:
    from onnx import numpy_helper

    if layer.bias is None:
        name = f"{layer.weight}.edgeprune_bias"
        model.graph.initializer.append(numpy_helper.from_array(delta, name))
        inputs = list(layer.node.input)
        if layer.node.op_type == "Gemm" and len(inputs) < 3:
            inputs.append(name)
        else:
            inputs = inputs[:2] + [name]
        del layer.node.input[:]
        layer.node.input.extend(inputs)
        layer.bias = name
        inits[name] = model.graph.initializer[-1]
        return
    bias = numpy_helper.to_array(inits[layer.bias]).astype(np.float32)
    inits[layer.bias].CopyFrom(numpy_helper.from_array((bias + delta).astype(np.float32), layer.bias))


def _sqnr(ref: np.ndarray, test: np.ndarray) -> float:
    from edgeprune.quant.metrics import sqnr_db

    return round(sqnr_db(ref, test), 3)


def _activation_ranges(method, act_bits, stats, calset, prepared, tmp, progress, info):
    """(TensorsData, CalibrationMethod) for the ORT calibration cache."""
    from onnxruntime.quantization import CalibrationMethod
    from onnxruntime.quantization.calibrate import TensorData, TensorsData

    if method == "aciq":
        from edgeprune.quant.aciq import fit_for_bits

        data = {}
        kinds: dict[str, int] = {}
        one_sided = 0
        for name, s in stats.items():
            if s.count == 0:
                continue
            f = fit_for_bits(s.sample(), act_bits, s.lowest, s.highest)
            lo, hi = f.clip_range(act_bits)
            data[name] = TensorData(lowest=np.float32(lo), highest=np.float32(hi))
            kind = f.dist if f.clipped else "observed range (no clip measured better)"
            kinds[kind] = kinds.get(kind, 0) + 1
            one_sided += int(f.one_sided)
        info.update({"source": "ACIQ fit per tensor", "tensors": len(data), "distributions": kinds,
                     "one_sided": one_sided})
        return TensorsData(CalibrationMethod.MinMax, data), CalibrationMethod.MinMax
    from onnxruntime.quantization import create_calibrator
    from onnxruntime.quantization.registry import QDQRegistry, QLinearOpsRegistry
    from tqdm import tqdm

    enum = {"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy,
            "percentile": CalibrationMethod.Percentile}[method]
    op_types = sorted(set(QLinearOpsRegistry) | set(QDQRegistry))
    try:
        calibrator = create_calibrator(Path(prepared), op_types, augmented_model_path=str(tmp / "augmented.onnx"),
                                       calibrate_method=enum, extra_options=CALIBRATOR_OPTIONS.get(method, {}))
        batches = tqdm(calset.batches("calibration"), total=calset.num_batches("calibration"),
                       desc=f"calibrate ({method})", unit="batch", disable=not progress, leave=False)
        import contextlib
        import io

        with contextlib.redirect_stdout(io.StringIO()):  # ORT's calibrators print their progress
            calibrator.collect_data(_Reader(batches))
            tensors = calibrator.compute_data()
    except QuantError:
        raise
    except Exception as err:  # noqa: BLE001
        raise QuantError(f"onnxruntime's {method} calibrator failed: {type(err).__name__}: {err}") from None
    info.update({"source": f"onnxruntime {enum.name} calibrator", "options": CALIBRATOR_OPTIONS.get(method, {}),
                 "tensors": len(list(tensors))})
    return tensors, enum


class _Reader:
    """onnxruntime CalibrationDataReader over our batches."""

    def __init__(self, batches):
        self._it = iter(batches)

    def get_next(self):
        return next(self._it, None)

    def __iter__(self):
        return self

    def __next__(self):
        item = self.get_next()
        if item is None:
            raise StopIteration
        return item


def _stamp_metadata(source: Path, path: Path, settings: dict[str, Any]) -> None:
    """Copy the fp32 model's edgeprune.* metadata_props (preprocess, spec, flops) + edgeprune.quant."""
    import onnx

    src = onnx.load(str(source), load_external_data=False)
    model = onnx.load(str(path))
    props = {p.key: p.value for p in src.metadata_props if p.key.startswith("edgeprune.")}
    props["edgeprune.quant"] = json.dumps(settings, separators=(", ", ": "))
    keep = [p for p in model.metadata_props if not p.key.startswith("edgeprune.")]
    del model.metadata_props[:]
    model.metadata_props.extend(keep)
    for k, v in props.items():
        p = model.metadata_props.add()
        p.key, p.value = k, v
    onnx.save(model, str(path))


def _session(path: Path, optimize: bool = True) -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    if not optimize:  # uint4 QDQ: ORT would fuse it into QLinearConv, which has no uint4 kernel
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    options.intra_op_num_threads = 1
    options.log_severity_level = 3
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def _run_all(session: Any, batches) -> np.ndarray:
    out = [session.run(None, feeds)[0] for feeds in batches]
    return np.concatenate(out) if out else np.zeros((0,))


def _evaluate(fp32: Path, qdq: Path, calset: Any, act_bits: int = 8) -> dict[str, Any]:
    """SQNR / top-1 agreement of the logits vs fp32 on the manifest's held-out samples."""
    from edgeprune.quant.metrics import sqnr_db, top1, top1_agreement

    part = "holdout" if calset.n_holdout > 0 else "calibration"
    n = calset.n_holdout if part == "holdout" else calset.n_calib
    ref = _run_all(_session(fp32), calset.batches(part))[:n]
    got = _run_all(_session(qdq, optimize=act_bits == 8), calset.batches(part))[:n]
    result: dict[str, Any] = {
        "samples": part if part == "holdout" else "calibration (the manifest has no holdout)",
        "count": int(n), "sqnr_db": round(sqnr_db(ref, got), 3),
        "top1_agreement": round(top1_agreement(ref, got), 4), "_ort_logits": got, "_fp32_logits": ref,
    }
    if act_bits == 8:  # the file's own arithmetic, QDQ computed in float: what exact int8 kernels give
        exact = _run_all(_session(qdq, optimize=False), calset.batches(part))[:n]
        result["sqnr_db_float_qdq"] = round(sqnr_db(ref, exact), 3)
    if calset.labels is not None:
        lo = calset.n_calib if part == "holdout" else 0
        labels = calset.labels[lo:lo + n]
        result["top1_fp32"] = round(top1(ref, labels), 4)
        result["top1_quantized"] = round(top1(got, labels), 4)
    return result


KERNEL_LOSS_WARN_DB = 3.0


def _warnings(evaluation: dict[str, Any], rr: Any, real_int8: bool) -> list[str]:
    """What the user should know: int8 kernels on this CPU far below the file's own arithmetic."""
    out = []
    exact, got = evaluation.get("sqnr_db_float_qdq"), evaluation.get("sqnr_db")
    if real_int8 and exact is not None and got is not None and exact - got > KERNEL_LOSS_WARN_DB:
        out.append(
            f"ONNX Runtime's int8 kernels on this CPU give {got} dB logit SQNR, {exact - got:.1f} dB below the "
            f"quantized model's own arithmetic ({exact} dB)"
            + ("; the weights already use 7-bit codes (reduce range)" if rr.enabled else
               "; its int8 products probably saturate (x86 without VNNI): quantize with --reduce-range on")
        )
    return out


def _has_openvino() -> bool:
    import importlib.util

    return importlib.util.find_spec("openvino") is not None


def _openvino(qdq: Path, xml: Path, calset: Any, ort_logits: np.ndarray, fp32_logits: np.ndarray) -> dict[str, Any]:
    """Convert the QDQ model to IR, run it on the same samples, and read its execution precisions."""
    import onnx

    from edgeprune.export.openvino import convert_to_ir
    from edgeprune.quant.metrics import sqnr_db, top1_agreement

    meta = {p.key: p.value for p in onnx.load(str(qdq), load_external_data=False).metadata_props
            if p.key.startswith("edgeprune.")}
    try:
        version = convert_to_ir(qdq, xml, metadata=meta)
    except Exception as err:  # noqa: BLE001
        raise QuantError(f"OpenVINO cannot convert the QDQ model: {err}") from None
    import openvino as ov

    core = ov.Core()
    ov_model = core.read_model(str(xml))
    part = "holdout" if calset.n_holdout > 0 else "calibration"
    n = calset.n_holdout if part == "holdout" else calset.n_calib
    outs = []
    compiled_cache: dict[tuple[int, ...], Any] = {}
    precisions: dict[str, int] = {}
    for feeds in calset.batches(part):
        x = next(iter(feeds.values()))
        key = tuple(x.shape)
        if key not in compiled_cache:
            m = ov_model.clone()
            m.reshape({m.inputs[0].get_any_name(): ov.PartialShape(list(key))})
            compiled_cache[key] = core.compile_model(m, "CPU", {"INFERENCE_NUM_THREADS": 1,
                                                                 "INFERENCE_PRECISION_HINT": "f32"})
        compiled = compiled_cache[key]
        outs.append(compiled({compiled.inputs[0]: x})[compiled.outputs[0]])
        if not precisions:
            for op in compiled.get_runtime_model().get_ordered_ops():
                rt = op.get_rt_info()
                info = {k: rt[k].astype(str) for k in rt}
                if info.get("layerType") in ("Convolution", "FullyConnected", "MatMul"):
                    key = f"{info['layerType']} {info.get('runtimePrecision', '?')} {info.get('primitiveType', '?')}"
                    precisions[key] = precisions.get(key, 0) + 1
    got = np.concatenate(outs)[:n]
    return {
        "openvino_version": version,
        "sqnr_vs_fp32_db": round(sqnr_db(fp32_logits, got), 3),
        "top1_agreement_vs_fp32": round(top1_agreement(fp32_logits, got), 4),
        "sqnr_vs_ort_int8_db": round(sqnr_db(ort_logits, got), 3),
        "top1_agreement_vs_ort_int8": round(top1_agreement(ort_logits, got), 4),
        "layers_by_precision_and_kernel": precisions,
    }


def _versions() -> dict[str, str | None]:
    import onnx
    import onnxruntime

    try:
        import importlib.metadata as md

        ov = md.version("openvino")
    except Exception:  # noqa: BLE001
        ov = None
    return {"onnx": onnx.__version__, "onnxruntime": onnxruntime.__version__, "openvino": ov}


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, float) and not np.isfinite(obj):
        return str(obj)
    return obj
