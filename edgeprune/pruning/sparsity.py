"""Weight sparsity of a model and what it saves in storage (unstructured pruning, `--method han`).

Which weights count: the ``weight`` of every convolution and linear layer (biases, BatchNorm
and other parameters are left dense and are not counted). Encodings, per counted layer of
n weights, nnz of them non-zero, fp32 values:

    dense    4 n bytes
    bitmask  ceil(n / 8) bytes of mask + 4 nnz bytes of values
    csr      the weight as a (out channels) x (the rest) matrix: 4 (rows + 1) row pointers,
             4 nnz int32 column indices, 4 nnz values

Every other parameter and buffer counts as dense fp32 in all three. ``zip``: the deflate-
compressed bytes of the saved state_dict (what a zipped model.pt takes on disk).
"""

from __future__ import annotations

import io
import math
import zlib
from typing import Any

import torch
from torch import nn

LATENCY_NOTE = (
    "unstructured sparsity: the model keeps the dense architecture with zeros in its weights, so a dense "
    "runtime (ONNX Runtime, OpenVINO CPU) runs it at the dense model's latency; the saving is storage "
    "(sparse encodings, compression), or speed only on a runtime with sparse kernels"
)


def prunable_weights(model: nn.Module) -> list[tuple[str, torch.Tensor]]:
    """(module name, weight) of every conv and linear layer, in module order."""
    return [(name, m.weight) for name, m in model.named_modules()
            if isinstance(m, (nn.modules.conv._ConvNd, nn.Linear)) and getattr(m, "weight", None) is not None]


def bitmask_bytes(n: int, nnz: int) -> int:
    return math.ceil(n / 8) + 4 * nnz


def csr_bytes(rows: int, nnz: int) -> int:
    return 4 * (rows + 1) + 8 * nnz


@torch.no_grad()
def sparsity_report(model: nn.Module) -> dict[str, Any]:
    """Achieved sparsity (overall and per layer) and the model's size under each encoding."""
    layers, total, zeros = [], 0, 0
    dense = bitmask = csr = 0
    counted = set()
    for name, w in prunable_weights(model):
        n, nnz = w.numel(), int(torch.count_nonzero(w))
        total, zeros = total + n, zeros + (n - nnz)
        layers.append({"layer": name, "weights": n, "sparsity": (n - nnz) / n})
        dense += 4 * n
        bitmask += bitmask_bytes(n, nnz)
        csr += csr_bytes(w.shape[0], nnz)
        counted.add(id(w))
    rest = sum(4 * t.numel() for t in model.state_dict(keep_vars=True).values() if id(t) not in counted
               and t.dtype.is_floating_point)
    rest += sum(t.element_size() * t.numel() for t in model.state_dict(keep_vars=True).values()
                if id(t) not in counted and not t.dtype.is_floating_point)
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    raw = buffer.getvalue()
    return {
        "sparsity": zeros / total if total else 0.0,
        "weights": total,
        "zero_weights": zeros,
        "layers": layers,
        "bytes": {
            "dense": dense + rest,
            "bitmask": bitmask + rest,
            "csr": csr + rest,
            "model_pt": len(raw),
            "model_pt_zipped": len(zlib.compress(raw, 9)),
        },
        "encodings": "bitmask: 1 bit per weight + fp32 non-zeros; csr: int32 row pointers and column indices "
                     "+ fp32 non-zeros; other tensors dense; model_pt_zipped: deflate level 9 of model.pt",
    }
