"""torch vs exported files, on the fixed random inputs of ``edgeprune.pruning.parity.fixed_input``.

Each exported file is opened with its runtime (ONNX -> ONNX Runtime, IR -> OpenVINO with
``INFERENCE_PRECISION_HINT=f32``, since on AMX CPUs OpenVINO otherwise runs FP32 models in
bf16) and run at every (batch, seed); the worst relative difference must stay within the
file's tolerance. Top-1 agreement with torch is reported, not gated: on random inputs
near-tied logits may swap under tolerable noise.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

# Settings per runtime for parity runs. OpenVINO: force f32 (see the module docstring).
RUNNER_SETTINGS: dict[str, dict[str, Any]] = {"ort": {}, "openvino": {"precision": "f32"}}


@dataclass(frozen=True)
class ParityTarget:
    """One exported file to check: which runtime opens it, and the tolerance it must meet."""

    runtime: str  # "ort" or "openvino"
    path: Path
    rtol: float


@dataclass
class RuntimeParity:
    """Worst-case agreement of one runtime with torch over all (batch, seed) runs."""

    runtime: str
    file: str
    rtol: float
    max_abs_diff: float = 0.0
    rel_diff: float = 0.0
    top1_agreement: float = 1.0
    samples: int = 0
    worst: dict[str, int] = field(default_factory=dict)  # batch and seed of the worst rel_diff
    runs: list[dict[str, Any]] = field(default_factory=list)
    runner: dict[str, Any] = field(default_factory=dict)  # runner.describe() of the first run

    @property
    def ok(self) -> bool:
        return bool(self.rel_diff <= self.rtol)  # NaN compares False: a NaN output fails

    def to_json(self) -> dict[str, Any]:
        return {
            "runtime": self.runtime,
            "file": self.file,
            "tolerance_rel": self.rtol,
            "max_abs_diff": self.max_abs_diff,
            "rel_diff": self.rel_diff,
            "top1_agreement": self.top1_agreement,
            "samples": self.samples,
            "passed": self.ok,
            "worst": self.worst,
            "precision": self.runner.get("precision"),
            "runner": self.runner,
            "runs": self.runs,
        }


def compare_logits(reference: np.ndarray, output: np.ndarray) -> tuple[float, float, int]:
    """(max abs diff, max abs diff / max |reference|, samples whose argmax agrees)."""
    if reference.shape != output.shape:
        return float("inf"), float("inf"), 0
    diff = float(np.abs(reference.astype(np.float64) - output.astype(np.float64)).max())
    scale = float(np.abs(reference).max())
    rel = diff / scale if scale > 0 else diff
    batch = reference.shape[0]
    agree = int((reference.reshape(batch, -1).argmax(1) == output.reshape(batch, -1).argmax(1)).sum())
    return diff, rel, agree


def _worse(new: float, old: float) -> bool:
    """True when ``new`` is a worse difference than ``old``; NaN is the worst of all."""
    if math.isnan(old):
        return False
    return math.isnan(new) or new > old


def check_parity(
    model: Any,
    targets: Sequence[ParityTarget],
    input_shape: Sequence[int],
    batches: Sequence[int],
    seeds: Sequence[int],
    opener: Callable[..., Any] | None = None,
) -> list[RuntimeParity]:
    """Compare ``model`` (torch, eval mode) with every target file; one RuntimeParity each.

    ``opener`` defaults to ``edgeprune.runtime.open_runner`` (tests inject broken runners).
    Failing a tolerance is not raised here: the caller decides, so a report can show all.
    """
    import torch

    from edgeprune.pruning.parity import fixed_input

    if opener is None:
        from edgeprune.runtime import open_runner as opener
    references: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]] = {}
    with torch.no_grad():
        for batch in batches:
            for seed in seeds:
                x = fixed_input((batch, *input_shape[1:]), seed)  # [batch, C, H, W]
                references[batch, seed] = (x.numpy(), model(x).numpy())
    results = []
    for target in targets:
        result = RuntimeParity(target.runtime, target.path.name, target.rtol)
        agree = 0
        for batch in batches:
            runner = opener(target.path, target.runtime, batch=batch, **RUNNER_SETTINGS.get(target.runtime, {}))
            try:
                if not result.runner:
                    result.runner = runner.describe()
                name = runner.inputs[0].name
                for seed in seeds:
                    x, ref = references[batch, seed]
                    out = np.asarray(runner.run({name: x})[0])
                    diff, rel, ok_top1 = compare_logits(ref, out)
                    result.runs.append(
                        {"batch": batch, "seed": seed, "max_abs_diff": diff, "rel_diff": rel, "top1_agree": ok_top1}
                    )
                    if _worse(rel, result.rel_diff) or not result.worst:
                        result.rel_diff, result.worst = rel, {"batch": batch, "seed": seed}
                    if _worse(diff, result.max_abs_diff):
                        result.max_abs_diff = diff
                    agree += ok_top1
                    result.samples += batch
            finally:
                runner.close()
        result.top1_agreement = agree / result.samples if result.samples else 0.0
        results.append(result)
    return results
