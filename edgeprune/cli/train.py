"""`edgeprune train`: train a model on a dataset; write model.pt (state_dict) and metrics.json."""

from __future__ import annotations

import os

import click

from edgeprune.cli._options import (
    MODEL_HELP,
    check_out,
    input_shape_option,
    load_model,
    model_argument,
    weights_option,
)
from edgeprune.cli._train_options import (
    data_options,
    feed_options,
    open_data_for,
    parse_feed,
    set_threads,
    train_config,
    training_options,
)


@click.command(
    "train",
    help="Train MODEL on a dataset (SGD, momentum 0.9, wd 5e-4, cosine LR), evaluating and "
    "checkpointing every epoch. Writes OUT/model.pt, OUT/metrics.json (per-epoch metrics and the "
    "final top-1 'accuracy') and OUT/checkpoint.pt. Runs data-parallel under "
    "`torchrun --nproc_per_node N`.\n\n" + MODEL_HELP,
)
@model_argument
@data_options
@feed_options
@click.option("--epochs", type=click.IntRange(min=1), required=True, help="Training epochs.")
@training_options
@weights_option
@input_shape_option
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Folder for model.pt, metrics.json, checkpoint.pt.")
def command(model, data_name, data_root, test_subset, mean, std, augment, epochs, train_subset, lr, batch_size, seed, resume,
            stop_after, threads, progress, weights, input_shape, out):
    import torch

    from edgeprune.train.distributed import from_env
    from edgeprune.train.jobs import train_dense

    if data_name is None:
        raise click.UsageError("--data is required (e.g. --data fashion-mnist)")
    # Cheap checks first: a bad --out or --resume is found before the model, the data and an epoch.
    if stop_after is not None and stop_after > epochs:
        raise click.BadParameter(f"epoch {stop_after} is past --epochs {epochs}; give 1..{epochs}",
                                 param_hint="--stop-after")
    check_out(out, beside=False)
    from edgeprune.files.staging import Staging, partial_dir

    if resume and not (partial_dir(out) / "checkpoint.pt").is_file():
        raise click.BadParameter(f"there is no interrupted run to continue: {partial_dir(out) / 'checkpoint.pt'} "
                                 "does not exist; run without --resume to start one", param_hint="--resume")
    set_threads(threads)
    config = train_config(epochs, lr, batch_size, seed, from_weights=weights is not None)
    dist = from_env()
    torch.manual_seed(seed)  # the initialisation
    module, spec, shape = load_model(model, weights, input_shape)
    from edgeprune.models.preprocess import decide_feed
    from edgeprune.pruning.job import weights_manifest

    mean, std = parse_feed(mean, std)
    source = weights_manifest(weights)
    feed = decide_feed(spec, shape, mean=mean, std=std, weights_record=source.preprocess if source else None,
                       from_weights=weights is not None)
    data = open_data_for(data_name, data_root, shape, train_subset, test_subset, augment, feed)
    if not dist.is_main:  # rank 0 holds --out; every rank trains in the build folder
        train_dense(module, spec, shape, data, config, partial_dir(out), resume=resume, stop_after=stop_after,
                    progress=progress, dist=dist)
        return
    # Built in .OUT.partial/ beside --out and swapped in when complete: a failed or interrupted
    # run leaves the previous result in --out; an interrupted one keeps its checkpoint there.
    with Staging(out, resume=resume, keep_partial=True) as stage:
        metrics = train_dense(module, spec, shape, data, config, stage.path, resume=resume, stop_after=stop_after,
                              progress=progress, dist=dist)
        if not metrics["complete"]:
            stage.keep()
        else:
            stage.publish(sorted(p for p in os.listdir(stage.path) if p != "manifest.json"), marker="manifest.json")
    last = metrics["epochs"][-1]
    if metrics["complete"]:
        click.echo(f"{spec}  {data.train.name}  {len(metrics['epochs'])} epochs  top-1 {metrics['accuracy']:.4f}")
        click.echo(f"  wrote   {out}/model.pt, metrics.json")
    else:
        click.echo(f"stopped after epoch {last['epoch']} of {epochs} (test {last['test_accuracy']:.4f}); continue with --resume")
