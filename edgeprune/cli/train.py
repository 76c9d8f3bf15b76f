"""`edgeprune train`: train a model on a dataset; write model.pt (state_dict) and metrics.json."""

from __future__ import annotations

import click

from edgeprune.cli._options import (
    MODEL_HELP,
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
    metrics = train_dense(module, spec, shape, data, config, out, resume=resume, stop_after=stop_after,
                          progress=progress, dist=dist)
    if not dist.is_main:
        return
    last = metrics["epochs"][-1]
    if metrics["complete"]:
        click.echo(f"{spec}  {data.train.name}  {len(metrics['epochs'])} epochs  top-1 {metrics['accuracy']:.4f}")
        click.echo(f"  wrote   {out}/model.pt, metrics.json")
    else:
        click.echo(f"stopped after epoch {last['epoch']} of {epochs} (test {last['test_accuracy']:.4f}); continue with --resume")
