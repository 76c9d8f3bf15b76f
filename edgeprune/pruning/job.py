"""`run_prune(request)`: the one prune job behind `edgeprune prune` and the pipeline's prune stage.

    request = PruneRequest.build(model="edgeprune:resnet20", weights="runs/dense/model.pt",
                                 method="l1", budget="flops=0.5", align=16, out="runs/l1")
    result = run_prune(request)          # writes plan.json, model.pt, report.json, manifest.json

One-shot methods score, allocate and slim at once (then fine-tune with ``finetune_epochs``);
training-time methods prune while training for ``epochs``. Every path ends in the same folder
format (`edgeprune.pruning.folder.save_pruned`); an old folder's manifest is removed only when
its files start to change (the first training checkpoint, or the final write), so a job that
fails before that leaves the previous result usable. The manifest records what the model was fed:
the training data's normalisation when it trained here, else what the weights' own folder says,
else the spec's default.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

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
    budget, align = request.parsed_budget(), request.resolved_align()
    torch.manual_seed(request.seed)  # a random initialisation (no weights) is the same every run
    source = weights_manifest(request.weights)
    model, shape = build_model(request.model, request.input_shape, request.weights)
    data = _open_data(request, shape)
    result = _prune(request, model, shape, budget, align, data, resume=resume, stop_after=stop_after,
                    progress=progress, dist=dist)
    if result is None:
        return None
    if dist.is_main:
        from edgeprune.pruning.folder import save_pruned

        preprocess, classes = fed_preprocess(request, data, source, shape)
        save_pruned(request.out, result.plan, result.model, result.report, preprocess=preprocess, classes=classes,
                    settings=request.to_json())
    dist.barrier()
    return result


def _prune(request, model, shape, budget, align, data, **run):
    from edgeprune.pruning.one_shot import prune_one_shot
    from edgeprune.train import jobs

    if request.training_time:
        return jobs.prune_while_training(model, request.model, shape, request.method, budget, align, data,
                                         request.train_config(), request.out,
                                         method_options=request.method_options, **run)
    result = prune_one_shot(model, request.model, shape, request.method, budget, align)
    if request.finetune_epochs:
        return jobs.finetune(result, data, request.train_config(), request.out, **run)
    if data is not None:
        return jobs.with_accuracy(result, data, request.eval_batch_size)
    return result


def _open_data(request: PruneRequest, shape):
    if request.data is None:
        return None
    from edgeprune.data import open_data

    return open_data(request.data, root=request.data_root, input_shape=shape,
                     train_subset=request.train_subset, test_subset=request.test_subset)


def weights_manifest(weights: str | Path | None):
    """The verified manifest of the folder ``weights`` lies in, when an edgeprune job wrote it
    (its preprocessing and classes travel on); None for a state_dict of the user's own."""
    if weights is None:
        return None
    from edgeprune.files.manifest import manifest_of_file

    return manifest_of_file(weights, kinds=("train", "prune"))


def fed_preprocess(request: PruneRequest, data, source, shape) -> tuple[dict[str, Any] | None, list[str] | None]:
    """(preprocess record, class names) the pruned model was fed: the data's when it trained
    here, else the weights' folder's, else the data's (evaluated only), else the spec default."""
    from edgeprune.files.manifest import preprocess_record

    classes = list(data.train.classes) if data is not None else (source.classes if source else None)
    if data is not None and (request.trains or source is None or source.preprocess is None):
        norm = data.train.norm
        return preprocess_record(norm.mean, norm.std, data.train.name), classes
    if source is not None and source.preprocess is not None:
        return source.preprocess, classes
    return spec_preprocess(request.model, shape), classes


def spec_preprocess(spec: str, shape) -> dict[str, Any] | None:
    """The spec's default preprocessing as a manifest record (None for users' own models)."""
    from edgeprune.files.manifest import preprocess_record
    from edgeprune.models.preprocess import default_preprocess

    found = default_preprocess(spec, shape[1] if len(shape) > 1 else 0)
    return preprocess_record(found.mean, found.std, found.name) if found else None
