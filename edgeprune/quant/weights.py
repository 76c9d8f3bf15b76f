"""Weights: each Conv/Gemm weight clipped and quantized per output channel (optionally
bias-corrected), written back into the float model as its deployed values, with the scales
that make onnxruntime's quantizer reproduce our integer codes exactly."""

from __future__ import annotations

from typing import Any

import numpy as np

from edgeprune.quant.config import QuantizeConfig
from edgeprune.quant.qdq import QuantError, WeightedLayer


def quantize_weights(
    model: Any,
    layers: list[WeightedLayer],
    config: QuantizeConfig,
    code_bits: int,
    max_bits: int,
    stats: dict[str, Any] | None,
) -> tuple[dict[str, list[dict[str, Any]]], list[dict[str, Any]]]:
    """Quantize every layer's weight in ``model`` (in place); return (TensorQuantOverrides, one
    report per layer). ``code_bits``: the weight grid; ``max_bits``: the cap on per-channel widths."""
    inits = {i.name: i for i in model.graph.initializer}
    overrides: dict[str, list[dict[str, Any]]] = {}
    reports = []
    for layer in layers:
        overrides[layer.weight], report = _quantize_layer(model, layer, inits, config, code_bits, max_bits, stats)
        reports.append(report)
    return overrides, reports


def _quantize_layer(model, layer, inits, config, code_bits, max_bits, stats):
    from onnx import numpy_helper

    from edgeprune.quant.metrics import sqnr_db
    from edgeprune.quant.qdq import weight_overrides

    w_oc = np.moveaxis(numpy_helper.to_array(inits[layer.weight]).astype(np.float64), layer.axis, 0)
    deployed, scales, bits_c, extra = quantize_weight(w_oc, config.method, code_bits,
                                                      config.bit_allocation_enabled, max_bits)
    bias_delta = None
    if config.bias_correction:
        deployed, scales, bias_delta = _bias_correct(layer, w_oc, deployed, scales, config.bias_correction,
                                                     stats, extra)
    new_w = np.moveaxis(deployed, 0, layer.axis).astype(np.float32)
    inits[layer.weight].CopyFrom(numpy_helper.from_array(new_w, layer.weight))
    if bias_delta is not None:
        add_to_bias(model, layer, bias_delta.astype(np.float32), inits)
    report = {
        "node": layer.node.name, "op": layer.node.op_type, "channels": int(w_oc.shape[0]),
        "bits": sorted({int(b) for b in np.atleast_1d(bits_c)}),
        "mean_bits": float(np.mean(bits_c)),
        "weight_sqnr_db": round(sqnr_db(w_oc, deployed), 3),
        "bias_correction_abs_max": None if bias_delta is None else float(np.abs(bias_delta).max()),
        **extra,
    }
    return weight_overrides(scales, layer.axis), report


def quantize_weight(w_oc: np.ndarray, method: str, bits: int, allocate: bool, max_bits: int = 8):
    """(deployed float weights on the grid, per-channel scales, per-channel bits, report extras)
    for a weight with output channels on axis 0; ``max_bits`` caps the per-channel widths of bit
    allocation (7 with reduce range)."""
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


def _bias_correct(layer, w_oc, deployed, scales, kind, stats, extra):
    """(deployed weights, scales, bias delta) after bias correction of ``kind`` (see bias_correction)."""
    from edgeprune.quant import bias_correction as bcmod

    mean_map = stats[layer.input].mean_map if stats is not None else None
    if mean_map is None:
        raise QuantError(f"no calibration statistics for the input {layer.input!r} of {layer.node.name!r}")
    per_channel = (-1,) + (1,) * (w_oc.ndim - 1)
    if kind in ("mean-var", "both"):
        mu, xi = bcmod.mean_var_factors(w_oc, deployed)
        deployed = deployed * xi.reshape(per_channel)
        scales = scales * xi
        extra["xi_range"] = [float(xi.min()), float(xi.max())]
    if kind == "mean-var":
        effect = np.moveaxis(np.broadcast_to((xi * mu).reshape(per_channel), w_oc.shape), 0, layer.axis)
    else:
        effect = np.moveaxis(w_oc - deployed, 0, layer.axis)
    return deployed, scales, bcmod.expected_output(layer.node, effect, mean_map)


def add_to_bias(model: Any, layer: WeightedLayer, delta: np.ndarray, inits: dict[str, Any]) -> None:
    """Add ``delta`` to the layer's bias, giving it a bias initializer when it has none."""
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
