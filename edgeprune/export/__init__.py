"""Export a torch model to ONNX and OpenVINO IR, with metadata and a parity check.

    from edgeprune.export import ExportOptions, export_model, load_source

Importing this package imports neither torch nor any runtime; ``export_model`` does.
"""

from edgeprune.export.exporter import ExportResult, export_model
from edgeprune.export.options import (
    FORMATS,
    ExportError,
    ExportOptions,
    ExportParityError,
    parse_batch,
)
from edgeprune.export.source import ExportSource, load_source

__all__ = [
    "FORMATS",
    "ExportError",
    "ExportOptions",
    "ExportParityError",
    "ExportResult",
    "ExportSource",
    "export_model",
    "load_source",
    "parse_batch",
]
