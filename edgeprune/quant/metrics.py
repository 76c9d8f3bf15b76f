"""How far a quantized model's outputs are from fp32: SQNR and top-1 agreement."""

from __future__ import annotations

import math

import numpy as np


def sqnr_db(reference: np.ndarray, test: np.ndarray) -> float:
    """10 log10(sum ref^2 / sum (ref - test)^2) in dB; inf when identical."""
    ref = np.asarray(reference, dtype=np.float64)
    noise = float(np.sum((ref - np.asarray(test, dtype=np.float64)) ** 2))
    signal = float(np.sum(ref**2))
    if noise == 0.0:
        return math.inf
    if signal == 0.0:
        return -math.inf
    return 10.0 * math.log10(signal / noise)


def top1_agreement(reference: np.ndarray, test: np.ndarray) -> float:
    """Fraction of rows whose argmax agrees."""
    a = np.asarray(reference).reshape(len(reference), -1).argmax(1)
    b = np.asarray(test).reshape(len(test), -1).argmax(1)
    return float((a == b).mean()) if len(a) else math.nan


def top1(logits: np.ndarray, labels: np.ndarray) -> float:
    return float((np.asarray(logits).reshape(len(logits), -1).argmax(1) == np.asarray(labels)).mean())
