"""Post-training quantization of ONNX models: ACIQ clipping, bias correction, QDQ int8 via
onnxruntime's quantizer, simulated lower bit widths.

    from edgeprune.quant import QuantizeConfig, quantize_onnx
    result = quantize_onnx("model.onnx", "calibration/fashion-mnist.toml", "out/", QuantizeConfig(method="aciq"))

Importing this package imports neither torch nor any runtime.
"""

from edgeprune.quant.config import METHODS, QuantizeConfig
from edgeprune.quant.qdq import QuantError
from edgeprune.quant.quantize import QuantResult, quantize_onnx

__all__ = ["METHODS", "QuantError", "QuantResult", "QuantizeConfig", "quantize_onnx"]
