"""PyTorch reference runner: the numbers other runtimes are checked against.

``torch`` is imported inside the constructor, so importing this module costs nothing.
It runs either an in-memory ``nn.Module`` (pass ``shapes`` naming its inputs) or a
``torch.export`` program saved with ``torch.export.save`` (``.pt2``). Pickled modules are
not loaded, on purpose.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from edgeprune.errors import SpecError
from edgeprune.runtime.base import (
    Feeds,
    InputSpec,
    check_choice,
    check_model_file,
    check_positive_int,
    register_runtime,
    require,
    resolve_input_shapes,
    settings_dict,
)


@dataclass(frozen=True)
class TorchSettings:
    """Attributes:
    threads: ``torch.set_num_threads`` (process-wide); None leaves torch's default.
    device: cpu or cuda.
    """

    threads: int | None = None
    device: str = "cpu"

    def validate(self, where: str = "settings") -> None:
        check_positive_int(where, "threads", self.threads, optional=True)
        check_choice(where, "device", self.device, ("cpu", "cuda"))


_DTYPE_NAMES = {"float32": "f32", "float16": "f16", "bfloat16": "bf16", "float64": "f64"}


@register_runtime("torch", settings=TorchSettings, package="torch", extra="torch", aliases=("pytorch",))
class TorchRunner:
    """Runs a torch module in eval mode under ``torch.inference_mode``."""

    runtime = "torch"

    def __init__(
        self,
        model: str | os.PathLike | Any,
        settings: TorchSettings | None = None,
        *,
        batch: int | None = None,
        shapes: Mapping[str, Sequence[int]] | None = None,
    ) -> None:
        self.settings = settings or TorchSettings()
        self.settings.validate()
        torch = self._torch = require("torch", "torch")
        if self.settings.threads is not None:
            torch.set_num_threads(self.settings.threads)
        self.path: Path | None = None
        if isinstance(model, (str, os.PathLike)):
            self.path = check_model_file(model)
            if self.path.suffix != ".pt2":
                raise SpecError(
                    f"{self.path}: the torch runner reads torch.export programs (.pt2, written by "
                    "torch.export.save); pickled modules are not loaded"
                )
            program = torch.export.load(str(self.path))
            user_inputs = list(program.graph_signature.user_inputs)
            declared = []
            for node in program.graph.nodes:
                if node.op == "placeholder" and node.name in user_inputs:
                    val = node.meta["val"]
                    dims = tuple(int(d) if isinstance(d, int) else None for d in val.shape)
                    declared.append(InputSpec(node.name, dims, np.dtype(str(val.dtype).removeprefix("torch."))))
            self._module = program.module()
        else:
            if not shapes:
                raise SpecError("an in-memory torch module needs shapes={input_name: shape}")
            declared = [InputSpec(n, tuple(s), np.dtype(np.float32)) for n, s in shapes.items()]
            self._module = model.eval()
        self.model_inputs = declared
        self._inputs = resolve_input_shapes(declared, batch, shapes if self.path else None)
        self._device = torch.device(self.settings.device)
        self._module = self._module.to(self._device)

    @property
    def inputs(self) -> list[InputSpec]:
        return list(self._inputs)

    @property
    def output_names(self) -> list[str]:
        return []  # torch modules have no output names

    def run(self, feeds: Feeds) -> list[np.ndarray]:
        torch = self._torch
        args = [torch.from_numpy(np.ascontiguousarray(feeds[i.name])).to(self._device) for i in self._inputs]
        with torch.inference_mode():
            out = self._module(*args)
        if isinstance(out, torch.Tensor):
            out = [out]
        elif isinstance(out, dict):
            out = list(out.values())
        return [t.detach().cpu().numpy() for t in out]

    def describe(self) -> dict[str, Any]:
        torch = self._torch
        param = next(iter(self._module.parameters()), None)
        dtype = str(param.dtype).removeprefix("torch.") if param is not None else "float32"
        return {
            "runtime": self.runtime,
            "runtime_version": torch.__version__,
            "device": self.settings.device.upper(),
            "threads": torch.get_num_threads(),
            "precision": _DTYPE_NAMES.get(dtype, dtype),
            "quantized": False,
            "settings": settings_dict(self.settings),
        }

    def close(self) -> None:
        self._module = None
