"""How close the quantized model is to fp32 on the manifest's held-out samples: SQNR and top-1
agreement of the logits on ONNX Runtime (and on OpenVINO, from the IR), and the warnings that
follow from them."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from edgeprune.quant.qdq import QuantError

KERNEL_LOSS_WARN_DB = 3.0


def held_out(calset: Any) -> tuple[str, int]:
    """(the part evaluated on, its sample count): the holdout, or the calibration samples without one."""
    if calset.n_holdout > 0:
        return "holdout", calset.n_holdout
    return "calibration", calset.n_calib


def _run_all(session: Any, batches: Iterable[dict[str, np.ndarray]]) -> np.ndarray:
    out = [session.run(None, feeds)[0] for feeds in batches]
    return np.concatenate(out) if out else np.zeros((0,))


def evaluate(fp32: Path, qdq: Path, calset: Any, act_bits: int = 8) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """(the report's "evaluation", the logits {"fp32": ..., "ort": ...} it was computed from)."""
    from edgeprune.quant.metrics import sqnr_db, top1, top1_agreement
    from edgeprune.runtime.onnxruntime import ort_session

    part, n = held_out(calset)
    ref = _run_all(ort_session(fp32), calset.batches(part))[:n]
    # uint4 QDQ: ORT would fuse it into QLinearConv, which has no uint4 kernel
    got = _run_all(ort_session(qdq, optimize=act_bits == 8), calset.batches(part))[:n]
    result: dict[str, Any] = {
        "samples": part if part == "holdout" else "calibration (the manifest has no holdout)",
        "count": int(n), "sqnr_db": round(sqnr_db(ref, got), 3),
        "top1_agreement": round(top1_agreement(ref, got), 4),
    }
    if act_bits == 8:  # the file's own arithmetic, QDQ computed in float: what exact int8 kernels give
        exact = _run_all(ort_session(qdq, optimize=False), calset.batches(part))[:n]
        result["sqnr_db_float_qdq"] = round(sqnr_db(ref, exact), 3)
    if calset.labels is not None:
        lo = calset.n_calib if part == "holdout" else 0
        labels = calset.labels[lo:lo + n]
        result["top1_fp32"] = round(top1(ref, labels), 4)
        result["top1_quantized"] = round(top1(got, labels), 4)
    return result, {"fp32": ref, "ort": got}


def kernel_warnings(evaluation: dict[str, Any], rr: Any, real_int8: bool) -> list[str]:
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


def wants_openvino(openvino: bool | None, real_int8: bool) -> bool:
    """The ``openvino`` setting, or by default: real int8 and openvino installed."""
    if openvino is not None:
        return openvino
    return real_int8 and importlib.util.find_spec("openvino") is not None


def check_openvino(qdq: Path, xml: Path, calset: Any, logits: dict[str, np.ndarray]) -> dict[str, Any]:
    """Convert the QDQ model to IR at ``xml``, run it on the evaluated samples, and read the
    precisions its layers execute in."""
    from edgeprune.export.openvino import convert_to_ir
    from edgeprune.files.onnx_metadata import edgeprune_metadata
    from edgeprune.quant.metrics import sqnr_db, top1_agreement
    from edgeprune.runtime.openvino import compile_cpu, runtime_precisions

    try:
        version = convert_to_ir(qdq, xml, metadata=edgeprune_metadata(qdq))
    except Exception as err:  # noqa: BLE001
        raise QuantError(f"OpenVINO cannot convert the QDQ model: {err}") from None
    part, n = held_out(calset)
    compiled: dict[tuple[int, ...], Any] = {}
    outs = []
    for feeds in calset.batches(part):
        x = next(iter(feeds.values()))
        if x.shape not in compiled:
            compiled[x.shape] = compile_cpu(xml, x.shape, threads=1)
        model = compiled[x.shape]
        outs.append(model({model.inputs[0]: x})[model.outputs[0]])
    got = np.concatenate(outs)[:n]
    fp32, ort = logits["fp32"], logits["ort"]
    return {
        "openvino_version": version,
        "sqnr_vs_fp32_db": round(sqnr_db(fp32, got), 3),
        "top1_agreement_vs_fp32": round(top1_agreement(fp32, got), 4),
        "sqnr_vs_ort_int8_db": round(sqnr_db(ort, got), 3),
        "top1_agreement_vs_ort_int8": round(top1_agreement(ort, got), 4),
        "layers_by_precision_and_kernel": runtime_precisions(next(iter(compiled.values()))),
    }
