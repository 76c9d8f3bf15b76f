"""An ONNX file's ``metadata_props``: how exported and quantized files describe themselves
(``edgeprune.preprocess``, ``edgeprune.flops``, ``edgeprune.spec``, ``edgeprune.quant``, ...).

Reading works with ``onnx`` or, on a board with only a runtime, ``onnxruntime``."""

from __future__ import annotations

import os
from typing import Any, Mapping

PREFIX = "edgeprune."


def read_metadata(path: str | os.PathLike) -> dict[str, str]:
    """All ``metadata_props`` of an ONNX file (weights are not loaded); {} when the file is not
    ONNX or neither onnx nor onnxruntime is installed."""
    if not str(path).endswith(".onnx"):
        return {}
    try:
        import onnx
    except ImportError:
        onnx = None
    if onnx is not None:
        try:
            model = onnx.load(str(path), load_external_data=False)
        except Exception:  # noqa: BLE001 - not an ONNX file: no metadata
            return {}
        return {p.key: p.value for p in model.metadata_props}
    try:
        import onnxruntime as ort

        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        return dict(session.get_modelmeta().custom_metadata_map)
    except Exception:  # noqa: BLE001
        return {}


def set_metadata(model: Any, metadata: Mapping[str, str]) -> None:
    """Replace an in-memory ``onnx.ModelProto``'s ``edgeprune.*`` props with ``metadata``."""
    drop_props(model, PREFIX)
    for key, value in metadata.items():
        prop = model.metadata_props.add()
        prop.key, prop.value = key, str(value)


def write_metadata(path: str | os.PathLike, metadata: Mapping[str, str]) -> None:
    """Replace the file's ``edgeprune.*`` metadata_props with ``metadata`` (string values)."""
    import onnx

    model = onnx.load(str(path))
    set_metadata(model, metadata)
    onnx.save(model, str(path))


def edgeprune_metadata(path: str | os.PathLike) -> dict[str, str]:
    """Only the ``edgeprune.*`` props of a file."""
    return {k: v for k, v in read_metadata(path).items() if k.startswith(PREFIX)}


def drop_props(model: Any, prefix: str) -> None:
    """Remove every prop whose key starts with ``prefix`` from an ``onnx.ModelProto``."""
    keep = [p for p in model.metadata_props if not p.key.startswith(prefix)]
    del model.metadata_props[:]
    model.metadata_props.extend(keep)
