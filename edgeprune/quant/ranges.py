"""Activation ranges, written as onnxruntime's calibration cache: the ACIQ clipping range of a
Laplace/Gaussian fit per tensor, or the ranges of onnxruntime's own calibrators (baselines)."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path
from typing import Any

import numpy as np

from edgeprune.quant.config import QuantizeConfig
from edgeprune.quant.qdq import QuantError

# onnxruntime's calibrators, with their defaults except one: the Entropy calibrator's defaults
# (num_bins = num_quantized_bins = 128) leave it a single candidate threshold, the full range,
# so it returned exactly MinMax's ranges (checked on resnet20 and EfficientNet-Lite0). 2048
# histogram bins into 128 quantized bins is the TensorRT recipe the calibrator implements.
CALIBRATOR_OPTIONS: dict[str, dict[str, Any]] = {"entropy": {"num_bins": 2048, "num_quantized_bins": 128}}
CACHE_FILE = "ranges.json"


def calibration_cache(
    config: QuantizeConfig,
    stats: dict[str, Any] | None,
    calset: Any,
    prepared: Path,
    tmp: Path,
    progress: bool,
) -> tuple[Path, Any, dict[str, Any]]:
    """(the cache file in ``tmp``, its CalibrationMethod, what the report says about the ranges)."""
    from onnxruntime.quantization.calibrate import save_tensors_data

    if config.method == "aciq":
        assert stats is not None, "ACIQ ranges need the statistics pass"
        tensors, method, info = aciq_ranges(stats, config.act_bits)
    else:
        tensors, method, info = ort_ranges(config.method, calset, prepared, tmp, progress)
    cache = tmp / CACHE_FILE
    save_tensors_data(tensors, cache)
    return cache, method, info


def aciq_ranges(stats: dict[str, Any], act_bits: int) -> tuple[Any, Any, dict[str, Any]]:
    """The clipped [lo, hi] of an ACIQ fit per tensor (one-sided after ReLU)."""
    from onnxruntime.quantization import CalibrationMethod
    from onnxruntime.quantization.calibrate import TensorData, TensorsData

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
    info = {"source": "ACIQ fit per tensor", "tensors": len(data), "distributions": kinds, "one_sided": one_sided}
    return TensorsData(CalibrationMethod.MinMax, data), CalibrationMethod.MinMax, info


def ort_ranges(method: str, calset: Any, prepared: Path, tmp: Path, progress: bool) -> tuple[Any, Any, dict[str, Any]]:
    """The ranges onnxruntime's ``method`` calibrator finds on the calibration batches."""
    from onnxruntime.quantization import CalibrationMethod, create_calibrator
    from onnxruntime.quantization.registry import QDQRegistry, QLinearOpsRegistry
    from tqdm import tqdm

    enum = {"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy,
            "percentile": CalibrationMethod.Percentile}[method]
    op_types = sorted(set(QLinearOpsRegistry) | set(QDQRegistry))
    options = CALIBRATOR_OPTIONS.get(method, {})
    try:
        calibrator = create_calibrator(Path(prepared), op_types, augmented_model_path=str(tmp / "augmented.onnx"),
                                       calibrate_method=enum, extra_options=options)
        batches = tqdm(calset.batches("calibration"), total=calset.num_batches("calibration"),
                       desc=f"calibrate ({method})", unit="batch", disable=not progress, leave=False)
        with contextlib.redirect_stdout(io.StringIO()):  # ORT's calibrators print their progress
            calibrator.collect_data(_Reader(batches))
            tensors = calibrator.compute_data()
    except QuantError:
        raise
    except Exception as err:  # noqa: BLE001
        raise QuantError(f"onnxruntime's {method} calibrator failed: {type(err).__name__}: {err}") from None
    info = {"source": f"onnxruntime {enum.name} calibrator", "options": options, "tensors": len(list(tensors))}
    return tensors, enum, info


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
