"""What an export produces and how strictly it is checked: a frozen, JSON-friendly config.

Torch-free, so the CLI can read FORMATS and defaults without importing anything heavy.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from edgeprune.errors import EdgepruneError

FORMATS = ("onnx", "openvino")
EXPORTERS = ("torchscript", "dynamo")
MIN_OPSET = 17
DEFAULT_OPSET = 17

# Parity tolerances, relative: max|torch - runtime| / max|torch| over the logits.
# FP32 graphs differ from torch only by kernel summation order (measured ~1e-6 here).
FP32_RTOL = 1e-4
# FP16-compressed IR weights round every weight to 11 significant bits (relative error up
# to 2^-11 ~ 4.9e-4 each). Measured on the logits (random init, randomized BatchNorm):
# 4.3e-4 resnet20, 4.5e-4 mobilenet_v2, 5.7e-4 resnet18; the check allows 1e-2, ~20x
# margin for deeper or trained models, while still catching a wrong graph (errors ~1).
FP16_RTOL = 1e-2

# Artifact file names inside the output folder.
ONNX_FILE = "model.onnx"
IR_XML_FILE = "model.xml"
IR_BIN_FILE = "model.bin"
REPORT_FILE = "export.json"


class ExportError(EdgepruneError):
    """A model or setting that cannot be exported; nothing was written."""


class ExportParityError(ExportError):
    """An exported model computes something else than the torch model; nothing was written."""


@dataclass(frozen=True)
class ExportOptions:
    """How to export.

    Attributes:
        formats: any of "onnx", "openvino". OpenVINO IR is converted from the (simplified)
            ONNX graph, which is then published only when "onnx" is asked for too.
        opset: ONNX default-domain opset, >= 17.
        batch: None for a dynamic batch dimension (named "batch"; both runtimes handle it, and
            parity is checked at batch 1 and 2), or a fixed batch size.
        fp16: compress OpenVINO IR weights to FP16 (ONNX stays FP32); parity uses ``fp16_rtol``.
        simplify: run onnxsim (a missing or failing onnxsim keeps the unsimplified graph and
            says why in the report).
        exporter: "torchscript" (torch.onnx.export(dynamo=False), the default; see
            edgeprune/export/onnx.py for why) or "dynamo" (needs onnxscript).
        rtol: parity tolerance for FP32 artifacts.
        fp16_rtol: parity tolerance for the FP16-compressed IR.
        seeds: seeds of the fixed random inputs parity is checked on.
    """

    formats: tuple[str, ...] = FORMATS
    opset: int = DEFAULT_OPSET
    batch: int | None = None
    fp16: bool = False
    simplify: bool = True
    exporter: str = "torchscript"
    rtol: float = FP32_RTOL
    fp16_rtol: float = FP16_RTOL
    seeds: tuple[int, ...] = (0, 1)

    def validate(self) -> None:
        """ExportError naming the first setting that cannot be used."""
        if not self.formats:
            raise ExportError(f"no export format given; choose from {', '.join(FORMATS)}")
        for fmt in self.formats:
            if fmt not in FORMATS:
                raise ExportError(f"unknown export format {fmt!r}; choose from {', '.join(FORMATS)}")
        if len(set(self.formats)) != len(self.formats):
            raise ExportError(f"export format listed twice: {list(self.formats)}")
        if isinstance(self.opset, bool) or not isinstance(self.opset, int) or self.opset < MIN_OPSET:
            raise ExportError(f"opset must be an integer >= {MIN_OPSET}, got {self.opset!r}")
        if self.batch is not None and (isinstance(self.batch, bool) or not isinstance(self.batch, int) or self.batch < 1):
            raise ExportError(f"batch must be a positive integer or None (dynamic), got {self.batch!r}")
        if self.exporter not in EXPORTERS:
            raise ExportError(f"unknown ONNX exporter {self.exporter!r}; choose from {', '.join(EXPORTERS)}")
        if self.fp16 and "openvino" not in self.formats:
            raise ExportError("fp16 compresses OpenVINO IR weights; add the openvino format or drop fp16")
        if self.rtol < 0 or self.fp16_rtol < 0:
            raise ExportError("parity tolerances must be >= 0")
        if not self.seeds:
            raise ExportError("give at least one parity seed")

    @property
    def dynamic_batch(self) -> bool:
        return self.batch is None

    @property
    def parity_batches(self) -> tuple[int, ...]:
        """Batch sizes parity runs at: 1 and 2 for a dynamic batch, else the fixed one."""
        return (1, 2) if self.batch is None else (self.batch,)

    def to_json(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["formats"] = list(self.formats)
        data["seeds"] = list(self.seeds)
        data["batch"] = "dynamic" if self.batch is None else self.batch
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "ExportOptions":
        data = dict(data)
        data["formats"] = tuple(data.get("formats", FORMATS))
        data["seeds"] = tuple(data.get("seeds", (0, 1)))
        if data.get("batch") == "dynamic":
            data["batch"] = None
        options = cls(**data)
        options.validate()
        return options


def parse_batch(text: str) -> int | None:
    """'dynamic' -> None, '4' -> 4; ExportError otherwise."""
    if text.strip().lower() == "dynamic":
        return None
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise ExportError(f"--batch must be 'dynamic' or a positive integer, got {text!r}")
    return value
