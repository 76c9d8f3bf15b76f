"""`run_prune(request)`: the one prune job behind `edgeprune prune` and the pipeline's prune stage.

    request = PruneRequest.build(model="edgeprune:resnet20", weights="runs/dense/model.pt",
                                 method="l1", budget="flops=0.5", align=16, out="runs/l1")
    result = run_prune(request)          # writes plan.json, model.pt, report.json, manifest.json

One-shot methods score, allocate and slim at once (then fine-tune with ``finetune_epochs``);
those that sample the data (ThiNet, He et al. 2017) read it from the training split first;
training-time methods prune while training for ``epochs``; Scratch-E/B (``from_plan`` +
``scratch``) trains a plan's slim architecture from random initialisation
(`edgeprune.pruning.scratch`). Every path ends in the same folder
format (`edgeprune.pruning.folder.save_pruned`). What the model is fed while it trains here is
decided once (`edgeprune.models.preprocess.decide_feed`) and recorded in the manifest. An old
folder's manifest is removed only when its files start to change (the first training
checkpoint, or the final write), so a job that fails before that leaves the previous result
usable.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from edgeprune.models.preprocess import decide_feed
from edgeprune.pruning.request import PruneRequest, cli_name


def run_prune(
    request: PruneRequest,
    *,
    resume: bool = False,
    stop_after: int | None = None,
    progress: bool = True,
    dist: Any = None,
    names=cli_name,
):
    """Run ``request``; return the `PruneResult`, or None when stopped early (``stop_after``:
    the epoch checkpoint is kept, continue with ``resume=True``).

    Raises:
        RequestError: a bad setting (every problem, named with ``names``), before anything is built.
        EdgepruneError: an infeasible budget, a model that cannot be traced, data that does not fit.
    """
    request.check(names)
    import torch

    from edgeprune.models import build_model
    from edgeprune.train.distributed import current

    dist = dist or current()
    torch.manual_seed(request.seed)  # a random initialisation (no weights) is the same every run
    source = weights_manifest(request.weights)
    model, shape = build_model(request.model, request.input_shape, request.weights)
    feed = decide_feed(request.model, shape, mean=request.mean, std=request.std,
                       weights_record=source.preprocess if source else None,
                       from_weights=request.weights is not None and request.weights_trained)
    data = _open_data(request, shape, feed)
    if request.scratch is not None:
        from edgeprune.pruning.scratch import train_from_scratch

        result = train_from_scratch(model, request, shape, data, resume=resume, stop_after=stop_after,
                                    progress=progress, dist=dist)
    else:
        budget, align = request.parsed_budget(), request.resolved_align()
        result = _prune(request, model, shape, budget, align, data, resume=resume, stop_after=stop_after,
                        progress=progress, dist=dist)
    if result is None:
        return None
    if dist.is_main:
        from edgeprune.pruning.folder import save_pruned

        preprocess, classes = fed_preprocess(request, data, feed, source, shape)
        result.report["preprocess"] = preprocess
        result.report["augment"] = data.augment.to_json() if data is not None and data.augment else None
        save_pruned(request.out, result.plan, result.model, result.report, preprocess=preprocess, classes=classes,
                    settings=request.to_json())
    dist.barrier()
    return result


def _prune(request, model, shape, budget, align, data, **run):
    from edgeprune.pruning.one_shot import prune_one_shot
    from edgeprune.train import jobs

    latency = None
    if request.latency_table is not None:
        from edgeprune.latency.source import LatencySource

        latency = LatencySource.load(request.latency_table)
    if request.unstructured:
        return jobs.prune_unstructured(model, request.model, shape, request.method, budget, data,
                                       request.train_config(), request.out, method_options=request.method_options,
                                       **run)
    if request.training_time:
        return jobs.prune_while_training(model, request.model, shape, request.method, budget, align, data,
                                         request.train_config(), request.out,
                                         method_options=request.method_options, latency=latency, **run)
    result = prune_one_shot(model, request.model, shape, request.method, budget, align,
                            options=request.method_options, calibration=_calibration(request, data), latency=latency)
    if request.finetune_epochs:
        return jobs.finetune(result, data, request.train_config(), request.out, **run)
    if data is not None:
        return jobs.with_accuracy(result, data, request.eval_batch_size)
    return result


def _calibration(request: PruneRequest, data):
    """Input batches for methods that sample the data (``needs_data``): the training split in
    the order of the first training epoch, without augmentation; None without data."""
    if data is None:
        return None
    from edgeprune.data.batches import train_batches

    return (b.x for b in train_batches(data.train, request.batch_size, seed=request.seed, epoch=0, aug=None))


def _open_data(request: PruneRequest, shape, feed):
    if request.data is None:
        return None
    from edgeprune.data import Normalization, open_data

    norm = Normalization(feed.mean, feed.std, feed.name) if feed is not None else None
    return open_data(request.data, root=request.data_root, input_shape=shape, augment=request.augment,
                     train_subset=request.train_subset, test_subset=request.test_subset, normalization=norm)


def weights_manifest(weights: str | Path | None):
    """The verified manifest of the folder ``weights`` lies in, when an edgeprune job wrote it
    (its preprocessing and classes travel on); None for a state_dict of the user's own."""
    if weights is None:
        return None
    from edgeprune.files.manifest import manifest_of_file

    return manifest_of_file(weights, kinds=("train", "prune"))


def fed_preprocess(request: PruneRequest, data, feed, source, shape) -> tuple[dict[str, Any] | None, list[str] | None]:
    """(preprocess record, class names) of the pruned model: what it was fed (`decide_feed`:
    given mean/std, its weights' folder, its spec; the data's statistics only when none is
    known), and the data's classes, else those its weights' folder records."""
    from edgeprune.files.manifest import preprocess_record

    classes = list(data.train.classes) if data is not None else (source.classes if source else None)
    if feed is not None:
        return preprocess_record(feed.mean, feed.std, feed.name), classes
    if data is not None:
        norm = data.train.norm
        return preprocess_record(norm.mean, norm.std, f"statistics of {data.train.name}"), classes
    return spec_preprocess(request.model, shape), classes


def spec_preprocess(spec: str, shape) -> dict[str, Any] | None:
    """The spec's default preprocessing as a manifest record (None for users' own models)."""
    from edgeprune.files.manifest import preprocess_record
    from edgeprune.models.preprocess import default_preprocess

    found = default_preprocess(spec, shape[1] if len(shape) > 1 else 0)
    return preprocess_record(found.mean, found.std, found.name) if found else None
