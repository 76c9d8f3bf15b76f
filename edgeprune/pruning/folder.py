"""The folder a pruning run leaves: plan.json, model.pt (slim state_dict), report.json.

``load_pruned(dir)`` rebuilds the slim model by replaying the plan on a fresh dense
instance of the spec and loading the weights with ``weights_only=True``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from edgeprune.errors import PlanError, SpecError
from edgeprune.files.atomic import save_torch, write_json
from edgeprune.pruning.plan import PruningPlan

PLAN, MODEL, REPORT = "plan.json", "model.pt", "report.json"


def save_pruned(out: str | Path, plan: PruningPlan, model, report: dict[str, Any]) -> Path:
    """Write the three artifacts, each atomically; report.json last (it marks completion)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    save_torch(out / MODEL, model.state_dict())
    plan.save(out / PLAN)
    write_json(out / REPORT, report)
    return out


def load_pruned(folder: str | Path):
    """Return (slim model in eval mode, plan, report) from a pruning output folder."""
    import torch

    from edgeprune.models import build_model, load_weights
    from edgeprune.pruning.slim import slim

    folder = Path(folder)
    if not folder.is_dir():
        raise SpecError(f"{str(folder)!r} is not a folder written by `edgeprune prune`")
    for name in (PLAN, MODEL):
        if not (folder / name).is_file():
            raise SpecError(f"{folder}: missing {name}; is this a complete `edgeprune prune` output?")
    plan = PruningPlan.load(folder / PLAN)
    report = json.loads((folder / REPORT).read_text()) if (folder / REPORT).is_file() else {}
    dense, _ = build_model(plan.spec, plan.input_shape)
    try:
        model = slim(dense, plan)
    except PlanError as err:
        raise PlanError(f"{folder / PLAN}: {err}") from None
    with torch.no_grad():
        load_weights(model, folder / MODEL, f"the slim {plan.spec} of {folder / PLAN}")
    return model.eval(), plan, report
