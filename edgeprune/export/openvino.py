"""ONNX -> OpenVINO IR (model.xml + model.bin) with ``openvino.convert_model`` / ``save_model``.

Weights stay FP32 unless ``fp16`` is set: ``save_model`` compresses to FP16 by default,
which would make "FP32 by default" silently false. The ``edgeprune.*`` metadata goes into
the IR's ``rt_info`` under ``edgeprune`` (read it back with
``core.read_model(xml).get_rt_info(["edgeprune", "flops"]).astype(str)``).
"""

from __future__ import annotations

import os
from typing import Mapping

from edgeprune.files.onnx_metadata import PREFIX as METADATA_PREFIX
from edgeprune.export.options import ExportError
from edgeprune.runtime.base import require


def convert_to_ir(
    onnx_path: str | os.PathLike,
    xml_path: str | os.PathLike,
    *,
    fp16: bool = False,
    metadata: Mapping[str, str] | None = None,
) -> str:
    """Convert an ONNX file to IR at ``xml_path`` (the .bin goes beside it); return OpenVINO's version.

    Raises:
        MissingDependencyError: openvino is not installed.
        ExportError: OpenVINO cannot convert or save the model.
    """
    ov = require("openvino", "openvino")
    try:
        model = ov.convert_model(str(onnx_path))
    except Exception as err:  # noqa: BLE001 - the frontend's message names the failing node
        raise ExportError(f"OpenVINO cannot convert {onnx_path}: {_first_line(err)}") from None
    for key, value in (metadata or {}).items():
        model.set_rt_info(value, ["edgeprune", key.removeprefix(METADATA_PREFIX)])
    try:
        ov.save_model(model, str(xml_path), compress_to_fp16=fp16)
    except Exception as err:  # noqa: BLE001
        raise ExportError(f"OpenVINO cannot save IR to {xml_path}: {_first_line(err)}") from None
    return str(ov.__version__)


def read_ir_metadata(xml_path: str | os.PathLike) -> dict[str, str]:
    """The ``edgeprune.*`` metadata stored in an IR's rt_info, keys with their prefix."""
    ov = require("openvino", "openvino")
    model = ov.Core().read_model(str(xml_path))
    if not model.has_rt_info(["edgeprune"]):
        return {}
    keys = model.get_rt_info()["edgeprune"]
    return {f"{METADATA_PREFIX}{k}": model.get_rt_info(["edgeprune", k]).astype(str) for k in keys}


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__
