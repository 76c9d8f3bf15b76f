"""The training jobs: train a dense model, prune while training (DTP, SFP, CR-SFP), fine-tune a
one-shot-pruned model. Each checkpoints into ``out`` (rank 0 only) and resumes from
``out/checkpoint.pt`` with ``resume=True``. ``train_dense`` writes its folder (model.pt,
metrics.json, manifest.json); the pruning jobs return their result to
`edgeprune.pruning.job.run_prune`, which writes the prune folder."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from torch import nn

from edgeprune.data.base import DataSplits
from edgeprune.errors import MethodError, SpecError
from edgeprune.files.atomic import save_torch
from edgeprune.files.manifest import clear_manifest, preprocess_record, write_manifest
from edgeprune.methods import get_method
from edgeprune.pruning.budget import Budget, allocate
from edgeprune.pruning.folder import MODEL
from edgeprune.pruning.graph import ChannelGraph
from edgeprune.pruning.one_shot import PruneResult, slim_with_parity
from edgeprune.pruning.plan import fingerprint
from edgeprune.train.base import TrainConfig
from edgeprune.train.batchnorm import DEFAULT_BATCHES, recalibrate_batchnorm
from edgeprune.train.distributed import Dist, current
from edgeprune.train.trainer import METRICS, Trainer, check_classes, evaluate


def train_dense(
    model: nn.Module,
    spec: str,
    input_shape: tuple[int, ...],
    data: DataSplits,
    config: TrainConfig,
    out: str | Path,
    *,
    resume: bool = False,
    stop_after: int | None = None,
    progress: bool = True,
    dist: Dist | None = None,
) -> dict[str, Any]:
    """Train ``model``; write out/model.pt (state_dict) and out/metrics.json (with ``accuracy``)
    when all epochs are done. Returns the metrics (``complete`` False after ``stop_after``)."""
    dist = dist or current()
    check_classes(model, data, spec)
    run = {"job": "train", "spec": spec, "input_shape": list(input_shape), "fingerprint": fingerprint(model)}
    trainer = Trainer(model, data, config, out=out, run=run, dist=dist, progress=progress)
    if dist.is_main:
        clear_manifest(out)
    metrics = trainer.fit(resume=resume, stop_after=stop_after)
    if metrics["complete"] and dist.is_main:
        save_torch(Path(out) / MODEL, model.state_dict())
        norm = data.train.norm
        write_manifest(out, "train", [MODEL, METRICS], spec=spec, input_shape=input_shape,
                       preprocess=preprocess_record(norm.mean, norm.std, norm.source or data.train.name),
                       classes=list(data.train.classes),
                       settings={"config": config.to_json(), "data": data.describe()})
    return metrics


def prune_while_training(
    model: nn.Module,
    spec: str,
    input_shape: tuple[int, ...],
    method: str,
    budget: Budget,
    align: int,
    data: DataSplits,
    config: TrainConfig,
    out: str | Path,
    *,
    method_options: dict[str, Any] | None = None,
    resume: bool = False,
    stop_after: int | None = None,
    progress: bool = True,
    dist: Dist | None = None,
    bn_recalibration: int = DEFAULT_BATCHES,
    latency: Any = None,
) -> PruneResult | None:
    """Train ``model`` with a training-time method (dtp, sfp, crsfp) to ``budget``, then slim it.

    ``method_options`` go to ``get_method(method, **method_options)`` (e.g.
    ``{"consistency_lambda": 0.5}`` for crsfp) and are part of the run's identity: a resume
    with other options is refused. Writes plan.json, model.pt (slim) and report.json (with
    ``accuracy``, the slim model's top-1 on the test split, the masked-vs-slim parity, and the
    method's own fields under its name, e.g. report["dtp"]) like one-shot pruning, plus the
    training's metrics.json and checkpoint.pt (the caller writes the folder). Returns None if
    stopped before the last epoch.

    ``bn_recalibration``: batches of training images (no augmentation) on which the pruned
    (masked) model's BatchNorm statistics are re-estimated before it is slimmed, evaluated and written
    (`edgeprune.train.batchnorm`; 0: keep the statistics training left). The report gives the
    accuracy before and after (``bn_recalibration``). ``latency`` (a
    `edgeprune.latency.source.LatencySource`): the latency metric for latency budgets, calibrated
    once on the dense model (rank 0) and kept in out/latency_calibration.json for the resume."""
    start = time.perf_counter()
    dist = dist or current()
    options = dict(sorted((method_options or {}).items()))
    pruner = get_method(method, **options)
    if not getattr(pruner, "training_time", False):
        raise SpecError(f"method {method!r} is not a training-time method; use prune_one_shot")
    check_classes(model, data, spec)
    dense_fingerprint = fingerprint(model)
    graph = ChannelGraph(model, input_shape)
    if budget.metric == "latency" and not getattr(pruner, "latency_budgets", True):
        raise MethodError(f"method {method!r} does not take latency budgets (it removes whole blocks, whose "
                          "latency the table does not model); use flops= or params=")
    init_scores = pruner.scores(model, graph)
    if latency is not None:
        graph.cost = _latency_cost(model, graph, input_shape, latency, align, out, dist, progress,
                                   scores=init_scores, budget=budget)
    widths = allocate(graph.cost, init_scores, budget, align)  # BudgetError if infeasible
    pruner.attach(model, graph, widths, init_scores)
    run = {
        "job": "prune", "spec": spec, "input_shape": list(input_shape), "fingerprint": dense_fingerprint,
        "method": method, "method_options": options, "method_config": pruner.config.to_json(),
        "budget": str(budget), "align": align,
        "widths": list(widths),
    }
    if latency is not None:
        run["latency"] = {"table": latency.digest(), "calibration": graph.cost.calibration.to_json()}
    trainer = Trainer(model, data, config, out=out, method=pruner, run=run, dist=dist, progress=progress)
    if dist.is_main:
        clear_manifest(out)  # the folder's files are about to change: never half old, half new
    metrics = trainer.fit(resume=resume, stop_after=stop_after)
    if not metrics["complete"]:
        return None
    recalibration = None
    if bn_recalibration > 0:  # on the masked model (eval mode: the methods' hard masks), before
        # kept() lets a method rewrite its BatchNorms (ResRep's merge leaves them identities)
        before = evaluate(model, data.test, config.eval_batch_size, dist)["accuracy"]
        images = recalibrate_batchnorm(model, data.train, config.batch_size, bn_recalibration, seed=config.seed)
        recalibration = {"batches": bn_recalibration, "images": images, "accuracy_before": before}
    kept = pruner.kept()
    removed = pruner.removed_blocks() if hasattr(pruner, "removed_blocks") else None  # depth pruning (sss)
    method_report = pruner.report()
    pruner.detach()
    if removed is None:
        result = slim_with_parity(model, spec, input_shape, graph, kept, method, budget, align)
    else:
        from edgeprune.pruning.depth import slim_with_depth

        result = slim_with_depth(model, spec, input_shape, graph, kept, removed, method, budget, align)
    plan, slim_model, report = result.plan, result.model, result.report
    test = evaluate(slim_model, data.test, config.eval_batch_size, dist)
    if recalibration is not None:
        recalibration["accuracy_after"] = test["accuracy"]
        report["bn_recalibration"] = recalibration
    report.update(
        accuracy=test["accuracy"],
        test_samples=test["samples"],
        training=_training_summary(config, data, metrics),
        elapsed_s=round(time.perf_counter() - start, 3),
    )
    report[method] = method_report
    if latency is not None:
        report["latency"]["table_digest"] = latency.digest()
    return PruneResult(plan, slim_model, report)


def _latency_cost(model, graph, input_shape, latency, align, out, dist, progress, **refine):
    """The calibrated latency cost model: measured by rank 0 (and kept in ``out``), read by the others."""
    from edgeprune.latency.source import latency_cost_model

    if dist.is_main:
        Path(out).mkdir(parents=True, exist_ok=True)
        cost = latency_cost_model(model, graph, input_shape, latency, align, folder=out, progress=progress, **refine)
    dist.barrier()
    if not dist.is_main:
        cost = latency_cost_model(model, graph, input_shape, latency, align, folder=out, **refine)
    return cost


def prune_unstructured(
    model: nn.Module,
    spec: str,
    input_shape: tuple[int, ...],
    method: str,
    budget: Budget,
    data: DataSplits,
    config: TrainConfig,
    out: str | Path,
    *,
    method_options: dict[str, Any] | None = None,
    resume: bool = False,
    stop_after: int | None = None,
    progress: bool = True,
    dist: Dist | None = None,
) -> PruneResult | None:
    """Train ``model`` with an unstructured method (``unstructured = True``: han) to the weight
    sparsity of ``budget`` (``sparsity=S``). No channel is removed: the plan keeps every channel
    and model.pt is the dense architecture with zeros. The report gains ``accuracy``,
    ``sparsity`` (the fraction of zero conv/linear weights), ``sizes`` (dense vs sparse
    encodings, `edgeprune.pruning.sparsity`), ``latency_note`` and the method's own fields
    under its name. Returns None if stopped before the last epoch."""
    from edgeprune.pruning.sparsity import LATENCY_NOTE, sparsity_report

    start = time.perf_counter()
    dist = dist or current()
    options = dict(sorted((method_options or {}).items()))
    pruner = get_method(method, **options)
    if not getattr(pruner, "unstructured", False) or budget.kind != "sparsity":
        raise SpecError(f"method {method!r} with budget {budget}: unstructured pruning needs an unstructured "
                        "method (han) and a sparsity= budget")
    check_classes(model, data, spec)
    dense_fingerprint = fingerprint(model)
    graph = ChannelGraph(model, input_shape)
    dense_sizes = sparsity_report(model)
    pruner.attach(model, budget.value)
    run = {
        "job": "prune", "spec": spec, "input_shape": list(input_shape), "fingerprint": dense_fingerprint,
        "method": method, "method_options": options, "method_config": pruner.config.to_json(),
        "budget": str(budget),
    }
    trainer = Trainer(model, data, config, out=out, method=pruner, run=run, dist=dist, progress=progress)
    if dist.is_main:
        clear_manifest(out)  # the folder's files are about to change: never half old, half new
    metrics = trainer.fit(resume=resume, stop_after=stop_after)
    if not metrics["complete"]:
        return None
    pruner.after_step()  # the masks hold in what is saved
    method_report = pruner.report()
    model.eval()
    result = slim_with_parity(model, spec, input_shape, graph, [list(range(g.size)) for g in graph.prunable],
                              method, budget, 1)
    plan, kept_model, report = result.plan, result.model, result.report
    sizes = sparsity_report(kept_model)
    test = evaluate(kept_model, data.test, config.eval_batch_size, dist)
    report.update(
        accuracy=test["accuracy"],
        test_samples=test["samples"],
        sparsity=sizes["sparsity"],
        target_sparsity=budget.value,
        sizes={"dense": dense_sizes["bytes"], "pruned": sizes["bytes"], "encodings": sizes["encodings"]},
        sparsity_per_layer=sizes["layers"],
        latency_note=LATENCY_NOTE,
        training=_training_summary(config, data, metrics),
        elapsed_s=round(time.perf_counter() - start, 3),
    )
    report["align"] = None
    report[method] = method_report
    return PruneResult(plan, kept_model, report)


def finetune(
    result: PruneResult,
    data: DataSplits,
    config: TrainConfig,
    out: str | Path,
    *,
    resume: bool = False,
    stop_after: int | None = None,
    progress: bool = True,
    dist: Dist | None = None,
) -> PruneResult | None:
    """Fine-tune the slim model of a one-shot result; its report gains ``accuracy``.
    Returns None if stopped before the last epoch."""
    dist = dist or current()
    model = result.model
    check_classes(model, data, result.plan.spec)
    run = {
        "job": "finetune", "spec": result.plan.spec, "input_shape": list(result.plan.input_shape),
        "fingerprint": fingerprint(model), "method": result.report["method"], "budget": result.report["budget"],
        "align": result.report["align"], "widths": list(result.plan.widths),
    }
    trainer = Trainer(model, data, config, out=out, run=run, dist=dist, progress=progress)
    if dist.is_main:
        clear_manifest(out)  # the folder's files are about to change: never half old, half new
    metrics = trainer.fit(resume=resume, stop_after=stop_after)
    if not metrics["complete"]:
        return None
    report = dict(result.report)
    report.update(accuracy=metrics["accuracy"], training=_training_summary(config, data, metrics))
    return PruneResult(result.plan, model.eval(), report)


def with_accuracy(result: PruneResult, data: DataSplits, batch_size: int = 500) -> PruneResult:
    """Add the slim model's test accuracy to a one-shot result (no training)."""
    check_classes(result.model, data, result.plan.spec)
    test = evaluate(result.model, data.test, batch_size)
    result.report.update(accuracy=test["accuracy"], test_samples=test["samples"])
    return result


def _training_summary(config: TrainConfig, data: DataSplits, metrics: dict[str, Any]) -> dict[str, Any]:
    last = metrics["epochs"][-1]
    return {
        "config": config.to_json(),
        "data": data.describe(),
        "epochs": len(metrics["epochs"]),
        "final_train_accuracy": last["train_accuracy"],
        "final_test_accuracy": last["test_accuracy"],
    }


