"""Scratch-E / Scratch-B (Liu et al. 2019, "Rethinking the Value of Network Pruning"): train the
slim architecture of a pruning plan from random initialisation.

    edgeprune prune --from-plan runs/l1 --scratch B --data fashion-mnist --epochs 160 --out runs/scratch-b

* ``E``: as many epochs as the dense model trained (``--epochs N``).
* ``B``: the same training compute: ``round(N x dense FLOPs / pruned FLOPs)`` epochs (at least 1),
  the FLOPs being the cost model's forward FLOPs at the plan's input shape.

Choices (ours, where the paper leaves room):

* The initialisation is *carved*: a fresh dense instance of the plan's spec, built after
  ``torch.manual_seed(--seed)``, is slimmed by the plan; the kept weights are therefore drawn
  from the model's own initialiser (custom inits such as zero-initialised residual BatchNorms
  survive), with the scale that initialiser chose for the dense layer's fan. Every layer the
  plan narrows is followed by a BatchNorm in the zoo's models, which makes that scale
  immaterial to training. The carve is checked like every prune: masked dense == slim.
* The learning rate defaults to the from-scratch 0.1 (``--lr``), the schedule is the trainer's
  cosine over the scratch epochs. ``--weights`` is refused: nothing is inherited.
* The result is an ordinary prune folder (plan.json with the same groups, model.pt, report.json
  with ``"scratch"``, manifest.json); training checkpoints into the folder and resumes with
  ``--resume`` like the other training jobs.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import Any

from edgeprune import __version__
from edgeprune.errors import PlanError

MODES = ("E", "B")
FORMULAS = {
    "E": "epochs = dense epochs",
    "B": "epochs = max(1, round(dense epochs x dense FLOPs / pruned FLOPs))",
}


def plan_file(from_plan: str | Path) -> Path:
    """``from_plan`` as a plan.json path: a prune folder means its plan.json."""
    path = Path(from_plan)
    return path / "plan.json" if path.is_dir() else path


def load_source_plan(from_plan: str | Path):
    """The plan ``--from-plan`` names (PlanError naming the path if it is missing or invalid)."""
    from edgeprune.pruning.plan import PruningPlan

    return PruningPlan.load(plan_file(from_plan))


def source_report(from_plan: str | Path) -> dict[str, Any]:
    """The report.json beside the plan, when a prune job wrote one (else {})."""
    path = plan_file(from_plan).parent / "report.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def scratch_epochs(mode: str, dense_epochs: int, dense_flops: float, pruned_flops: float) -> int:
    """Training epochs of Scratch-``mode`` (pure numbers; see `FORMULAS`)."""
    if mode == "E":
        return int(dense_epochs)
    if mode == "B":
        if not pruned_flops > 0:
            raise PlanError("Scratch-B: the pruned model has no FLOPs to scale the epochs by")
        return max(1, int(round(dense_epochs * dense_flops / pruned_flops)))
    raise PlanError(f"scratch mode must be one of {', '.join(MODES)}, got {mode!r}")


def plan_digest(plan) -> str:
    """A short hash of the plan's JSON: part of the training run's identity (resume)."""
    return hashlib.sha256(json.dumps(plan.to_json(), sort_keys=True).encode()).hexdigest()[:16]


def train_from_scratch(
    model,
    request,
    input_shape: tuple[int, ...],
    data,
    *,
    resume: bool = False,
    stop_after: int | None = None,
    progress: bool = True,
    dist=None,
):
    """Carve the plan's slim architecture out of ``model`` (a fresh random dense instance of the
    plan's spec), train it for the Scratch-E/B epochs, and return the `PruneResult` (None when
    stopped early). ``request`` is the validated `PruneRequest` (``from_plan``, ``scratch``,
    ``epochs`` = the dense model's epochs, the data and schedule settings)."""
    from edgeprune.pruning.depth import silence_blocks
    from edgeprune.pruning.graph import ChannelGraph, count_flops_params
    from edgeprune.pruning.one_shot import PARITY_RTOL, ParityError, PruneResult, masked_vs_slim
    from edgeprune.pruning.plan import fingerprint
    from edgeprune.pruning.slim import slim
    from edgeprune.files.manifest import clear_manifest
    from edgeprune.train.base import TrainConfig
    from edgeprune.train.distributed import current
    from edgeprune.train.trainer import Trainer, check_classes, evaluate

    start = time.perf_counter()
    dist = dist or current()
    where = f"--from-plan {plan_file(request.from_plan)}"
    plan = load_source_plan(request.from_plan)
    if tuple(input_shape) != tuple(plan.input_shape):
        raise PlanError(f"{where}: made for input shape {list(plan.input_shape)}, not {list(input_shape)}")
    dense_fingerprint = fingerprint(model)
    if dense_fingerprint != plan.fingerprint:
        raise PlanError(f"{where}: made for another model (fingerprint {plan.fingerprint}) than {request.model} "
                        f"({dense_fingerprint}); give the plan's MODEL ({plan.spec}) or omit MODEL")
    graph = ChannelGraph(model, input_shape)
    kept = [list(g.kept) for g in plan.groups]
    removed = list(plan.removed_blocks)
    if removed:  # depth pruning (sss): a removed block computes its shortcut once its branch is zero
        silence_blocks(model, removed)  # PlanError naming removed_blocks[i] if one cannot go
    slim_model = slim(model, plan)  # GraphError/PlanError if the plan does not fit
    parity = masked_vs_slim(model, graph, kept, slim_model, input_shape)
    if not parity.ok(PARITY_RTOL):
        raise ParityError(f"{where}: the slim model differs from the masked model by {parity.rel_diff:.2e} "
                          f"(relative), above {PARITY_RTOL:g}; nothing was trained")
    cost, widths = graph.cost, list(plan.widths)
    flops_dense, params_dense = cost.dense("flops"), cost.dense("params")
    if removed:  # measured on the slim model itself, as the depth-pruning job reports them
        flops_pruned, params_pruned = count_flops_params(slim_model, input_shape)
    else:
        flops_pruned, params_pruned = cost.flops(widths), cost.params(widths)
    mode, dense_epochs = request.scratch, int(request.epochs)
    epochs = scratch_epochs(mode, dense_epochs, flops_dense, flops_pruned)
    config = TrainConfig(epochs=epochs, lr=request.learning_rate, batch_size=request.batch_size, seed=request.seed,
                         eval_batch_size=request.eval_batch_size)
    check_classes(slim_model, data, plan.spec)
    run = {"job": "scratch", "spec": plan.spec, "input_shape": list(input_shape), "fingerprint": plan.fingerprint,
           "plan": plan_digest(plan), "widths": widths, "scratch": mode, "dense_epochs": dense_epochs}
    trainer = Trainer(slim_model, data, config, out=request.out, run=run, dist=dist, progress=progress)
    if dist.is_main:
        clear_manifest(request.out)  # the folder's files are about to change
    metrics = trainer.fit(resume=resume, stop_after=stop_after)
    if not metrics["complete"]:
        return None
    slim_model.eval()
    test = evaluate(slim_model, data.test, config.eval_batch_size, dist)
    src = source_report(request.from_plan)
    last = metrics["epochs"][-1]
    report = {
        "edgeprune_version": __version__,
        "spec": plan.spec,
        "input_shape": list(plan.input_shape),
        "method": f"scratch-{mode}",
        "budget": src.get("budget", "plan"),
        "min_keep": src.get("min_keep"),
        "align": src.get("align"),
        "flops_dense": int(flops_dense),
        "flops_pruned": int(flops_pruned),
        "flops_ratio": flops_pruned / flops_dense,
        "params_dense": int(params_dense),
        "params_pruned": int(params_pruned),
        "params_ratio": params_pruned / params_dense,
        "groups": [{"root": g.root, "size": g.size, "kept": len(k.kept)} for g, k in zip(graph.prunable, plan.groups)],
        "parity_max_abs_diff": parity.max_abs_diff,
        "parity_rel_diff": parity.rel_diff,
        "removed_blocks": removed,
        "warnings": [],
        "scratch": {
            "mode": mode,
            "plan": str(plan_file(request.from_plan)),
            "plan_method": src.get("method"),
            "plan_budget": src.get("budget"),
            "dense_epochs": dense_epochs,
            "epochs": epochs,
            "formula": FORMULAS[mode],
            "epochs_e": scratch_epochs("E", dense_epochs, flops_dense, flops_pruned),
            "epochs_b": scratch_epochs("B", dense_epochs, flops_dense, flops_pruned),
            "dense_over_pruned_flops": flops_dense / flops_pruned,
            "init": f"carved from a random dense {plan.spec} (seed {request.seed}), slimmed by the plan",
        },
        "accuracy": test["accuracy"],
        "test_samples": test["samples"],
        "training": {
            "config": config.to_json(),
            "data": data.describe(),
            "epochs": len(metrics["epochs"]),
            "final_train_accuracy": last["train_accuracy"],
            "final_test_accuracy": last["test_accuracy"],
        },
        "elapsed_s": round(time.perf_counter() - start, 3),
    }
    return PruneResult(plan, slim_model, report)
