"""A model saved by `edgeprune train` or `edgeprune prune`, read back through its manifest."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgeprune.files.manifest import Manifest, read_manifest


@dataclass
class SavedModel:
    model: Any  # nn.Module in eval mode
    spec: str
    input_shape: tuple[int, ...]
    manifest: Manifest
    plan: Any = None  # PruningPlan for a prune folder
    report: dict[str, Any] | None = None  # report.json of a prune folder


def load_saved(src: str | Path) -> SavedModel:
    """The model of a train or prune folder, after its files are checked against its manifest.

    Raises:
        ArtifactError: not such a folder, incomplete, or a file that does not match (named).
        SpecError: a model.pt that is a damaged zip or holds NaN/inf values (the tensor named).
    """
    from edgeprune.files.weights import check_weights_file
    from edgeprune.models.spec import build_model
    from edgeprune.pruning.folder import MODEL, load_pruned

    src = Path(src)
    manifest = read_manifest(src, kinds=("train", "prune"))
    check_weights_file(src / MODEL)  # zip CRCs and finite values (SpecError naming the tensor)
    if manifest.kind == "prune":
        model, plan, report = load_pruned(src, manifest)
        return SavedModel(model, plan.spec, tuple(plan.input_shape), manifest, plan, report)
    model, shape = build_model(manifest.spec, tuple(manifest.input_shape), src / MODEL)
    return SavedModel(model.eval(), str(manifest.spec), tuple(shape), manifest)
