"""Post-training quantization of ONNX models: ACIQ clipping, bias correction, QDQ int8 via
onnxruntime's quantizer, simulated lower bit widths.

    from edgeprune.quant import quantize_onnx
    result = quantize_onnx("model.onnx", "calibration/fashion-mnist.toml", "out/", method="aciq")

Importing this package imports neither torch nor any runtime.
"""

from edgeprune.quant.qdq import QuantError
from edgeprune.quant.quantize import METHODS, QuantResult, quantize_onnx

__all__ = ["METHODS", "QuantError", "QuantResult", "quantize_onnx"]
