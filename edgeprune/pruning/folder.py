"""The folder a prune job leaves: plan.json, model.pt (slim state_dict), report.json (+ the
training's metrics.json), and manifest.json, written last (`edgeprune.files.manifest`).

``load_pruned(dir)`` verifies the manifest, then rebuilds the slim model by replaying the plan
on a fresh dense instance of the spec and loading the weights with ``weights_only=True``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Sequence

from edgeprune.errors import PlanError
from edgeprune.files.atomic import save_torch, write_json
from edgeprune.files.manifest import Manifest, clear_manifest, read_manifest, write_manifest
from edgeprune.pruning.plan import PruningPlan

PLAN, MODEL, REPORT, METRICS = "plan.json", "model.pt", "report.json", "metrics.json"


def save_pruned(
    out: str | Path,
    plan: PruningPlan,
    model,
    report: dict[str, Any],
    *,
    preprocess: dict[str, Any] | None = None,
    classes: Sequence[str] | None = None,
    settings: dict[str, Any] | None = None,
) -> Path:
    """Write the artifacts, each atomically, then the manifest (it marks completion). A
    metrics.json that a training job left in ``out`` is listed too."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    clear_manifest(out)
    save_torch(out / MODEL, model.state_dict())
    plan.save(out / PLAN)
    write_json(out / REPORT, report)
    files = [PLAN, MODEL, REPORT] + ([METRICS] if "training" in report and (out / METRICS).is_file() else [])
    write_manifest(out, "prune", files, spec=plan.spec, input_shape=list(plan.input_shape), preprocess=preprocess,
                   classes=classes, settings=settings or {})
    return out


def load_pruned(folder: str | Path, manifest: Manifest | None = None):
    """Return (slim model in eval mode, plan, report) from a prune folder whose files match its
    manifest (``manifest``: one the caller already verified)."""
    import torch

    from edgeprune.models import build_model, load_weights
    from edgeprune.pruning.slim import slim

    folder = Path(folder)
    if manifest is None:
        manifest = read_manifest(folder, kinds=("prune",))
    plan = PruningPlan.load(folder / PLAN)
    report = json.loads((folder / REPORT).read_text())
    dense, _ = build_model(plan.spec, plan.input_shape)
    try:
        model = slim(dense, plan)
    except PlanError as err:
        raise PlanError(f"{folder / PLAN}: {err}") from None
    with torch.no_grad():
        load_weights(model, folder / MODEL, f"the slim {plan.spec} of {folder / PLAN}")
    return model.eval(), plan, report
