"""What to export: an `edgeprune prune` output folder or a model spec, as one ExportSource.

A prune folder brings its plan: the exported files record the plan's fingerprint (sha256 of
its canonical JSON, 16 hex digits: two files with the same value were slimmed by the same
plan), the budget and the method.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgeprune.errors import SpecError


@dataclass
class ExportSource:
    model: Any  # nn.Module in eval mode
    spec: str
    input_shape: tuple[int, ...]
    kind: str  # "pruned" or "spec"
    metadata: dict[str, str] = field(default_factory=dict)  # edgeprune.* keys for the files


def plan_fingerprint(plan: Any) -> str:
    """sha256 (first 16 hex digits) of the plan's canonical JSON."""
    text = json.dumps(plan.to_json(), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def load_source(
    src: str,
    *,
    weights: str | Path | None = None,
    input_shape: tuple[int, ...] | None = None,
) -> ExportSource:
    """Build the model named by ``src``: an existing folder is a prune output, else a spec.

    Raises:
        SpecError: a missing folder/file, an incomplete prune folder, a bad spec, weights given
            with a prune folder (its weights are in it).
    """
    from edgeprune.models.spec import build_model, parse_spec

    path = Path(src)
    if path.is_dir():
        if weights is not None:
            raise SpecError(f"{src}: a prune folder carries its own weights (model.pt); drop --weights")
        from edgeprune.pruning.folder import load_pruned

        model, plan, report = load_pruned(path)
        metadata = {
            "edgeprune.spec": plan.spec,
            "edgeprune.plan_fingerprint": plan_fingerprint(plan),
            "edgeprune.model_fingerprint": plan.fingerprint,
        }
        for key in ("budget", "method", "align"):
            if report.get(key) is not None:
                metadata[f"edgeprune.{key}"] = str(report[key])
        shape = tuple(input_shape or plan.input_shape)
        return ExportSource(model, plan.spec, shape, "pruned", metadata)
    if path.exists():
        raise SpecError(
            f"SRC {src!r} is a file; give the folder written by `edgeprune prune` or a model spec "
            "(with --weights for a state_dict)"
        )
    try:
        spec = parse_spec(src)
    except SpecError:
        raise SpecError(
            f"SRC {src!r} does not exist and is not a model spec; give the folder written by "
            "`edgeprune prune`, or a spec like torchvision:resnet18, edgeprune:resnet20, "
            "package.module:function"
        ) from None
    model, shape = build_model(spec, input_shape, weights)
    return ExportSource(model, spec.text, tuple(shape), "spec", {"edgeprune.spec": spec.text})
