"""Options shared by the commands that train or evaluate on data (train, prune, eval)."""

from __future__ import annotations

import click

DATA_HELP = "fashion-mnist (Debian's dataset-fashion-mnist files), or a directory with train/<class>/ and test/<class>/ image folders."


def data_options(f):
    """--data, --data-root, --test-subset."""
    f = click.option("--test-subset", type=click.IntRange(min=1), default=None, metavar="N",
                     help="Evaluate on the first N test images only (smoke runs; not the standard figure).")(f)
    f = click.option("--data-root", type=click.Path(file_okay=False), default=None,
                     help="Folder holding the Fashion-MNIST *-ubyte.gz files. Default: /usr/share/datasets/fashion-mnist.")(f)
    f = click.option("--data", "data_name", default=None, metavar="NAME|DIR", help=DATA_HELP)(f)
    return f


def feed_options(f):
    """--mean, --std (what the model is fed), --augment."""
    options = [
        click.option("--mean", default=None, metavar="M1,M2,...",
                     help="Per-channel mean the model expects, for pixels in [0,1] (e.g. 0.485,0.456,0.406). Default: "
                          "what its --weights' folder records, else the spec's for trained weights, else the data's statistics."),
        click.option("--std", default=None, metavar="S1,S2,...", help="Per-channel std, with --mean."),
        click.option("--augment", type=click.Choice(["auto", "none", "crop", "flip", "crop+flip"]), default="auto",
                     show_default=True, help="Training augmentation. auto: crop+flip for Fashion-MNIST, crop only for "
                     "image folders (a flip harms digits, text and other data that is not mirror-symmetric)."),
    ]
    for option in reversed(options):
        f = option(f)
    return f


def parse_feed(mean: str | None, std: str | None) -> tuple[tuple[float, ...] | None, tuple[float, ...] | None]:
    """--mean/--std text -> tuples (SpecError naming the option when not numbers)."""
    from edgeprune.models.preprocess import parse_values

    return (parse_values(mean, "--mean") if mean is not None else None,
            parse_values(std, "--std") if std is not None else None)


def training_options(f):
    """--train-subset, --lr, --batch-size, --seed, --resume, --stop-after, --threads, --no-progress."""
    options = [
        click.option("--train-subset", type=click.IntRange(min=2), default=None, metavar="N",
                     help="Train on the first N training images only."),
        click.option("--lr", type=float, default=None,
                     help="Peak learning rate of the cosine schedule. Default: 0.1 from scratch, 0.01 when starting from --weights."),
        click.option("--batch-size", type=click.IntRange(min=2), default=128, show_default=True,
                     help="Batch size per process (torchrun runs one process per rank)."),
        click.option("--seed", type=int, default=0, show_default=True,
                     help="Seeds initialisation, shuffling and augmentation; same seed, same result."),
        click.option("--resume", is_flag=True,
                     help="Continue from OUT/checkpoint.pt (written every epoch) to the same result as an uninterrupted run."),
        click.option("--stop-after", type=click.IntRange(min=1), default=None, metavar="EPOCH",
                     help="Stop after this epoch (the checkpoint is kept; continue later with --resume)."),
        click.option("--threads", type=click.IntRange(min=1), default=None,
                     help="torch intra-op threads (default: torch's choice). 1 is faster when another job shares a 2-core machine."),
        click.option("--progress/--no-progress", default=True, show_default=True,
                     help="Progress bars and per-epoch lines on stderr."),
    ]
    for option in reversed(options):
        f = option(f)
    return f


def open_data_for(data_name, data_root, input_shape, train_subset=None, test_subset=None, augment="auto", feed=None):
    """Load the dataset named on the command line, checked against the model's input shape and
    normalised as ``feed`` (a Preprocess) says, else with the data's own statistics."""
    from edgeprune.data import Normalization, open_data

    norm = Normalization(feed.mean, feed.std, feed.name) if feed is not None else None
    return open_data(data_name, root=data_root, input_shape=input_shape, train_subset=train_subset,
                     test_subset=test_subset, augment=augment, normalization=norm)


def set_threads(threads):
    if threads:
        import torch

        torch.set_num_threads(threads)


def train_config(epochs, lr, batch_size, seed, from_weights: bool):
    from edgeprune.pruning.request import LR_FROM_SCRATCH, LR_FROM_TRAINED
    from edgeprune.train import TrainConfig

    default_lr = LR_FROM_TRAINED if from_weights else LR_FROM_SCRATCH
    return TrainConfig(epochs=epochs, lr=lr if lr is not None else default_lr, batch_size=batch_size, seed=seed)
