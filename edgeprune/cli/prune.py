"""`edgeprune prune`: prune to an exact budget, written as plan.json + model.pt + report.json.

One-shot criteria (l1, l2, bn-scale) prune at once and may fine-tune afterwards
(--finetune-epochs); training-time methods (dtp, sfp, crsfp) prune while training (--epochs)."""

from __future__ import annotations

import dataclasses

import click

from edgeprune.cli._options import (
    MODEL_HELP,
    align_option,
    input_shape_option,
    load_model,
    model_argument,
    resolve_align,
    target_option,
    weights_option,
)
from edgeprune.cli._train_options import (
    data_options,
    open_data_for,
    set_threads,
    train_config,
    training_options,
)


@click.command("prune", help="Prune MODEL to an exact budget and physically slim it.\n\n" + MODEL_HELP)
@model_argument
@click.option("--method", default="l1", show_default=True,
              help="l1, l2 or bn-scale (one-shot); or, training while pruning (need --data and --epochs): "
                   "dtp (Differentiable Transportation Pruning), sfp (Soft Filter Pruning), "
                   "crsfp (SFP with a consistent full/pruned network pair, see --lambda).")
@click.option(
    "--budget",
    required=True,
    help="flops=F or params=P (fraction of dense to keep, e.g. flops=0.5), or ratio=R (fraction of channels removed per group).",
)
@click.option("--min-keep", default=0.2, show_default=True, type=click.FloatRange(0.0, 1.0),
              help="flops/params budgets: keep at least this fraction of every group's channels.")
@align_option
@target_option
@weights_option
@input_shape_option
@data_options
@click.option("--epochs", type=click.IntRange(min=1), default=None,
              help="Training epochs of a training-time method (dtp, sfp, crsfp).")
@click.option("--lambda", "consistency_lambda", type=click.FloatRange(min=0.0), default=None,
              help="crsfp only: weight of the symmetric KL between the full and the pruned network [default: 1.0].")
@click.option("--finetune-epochs", type=click.IntRange(min=0), default=0, show_default=True,
              help="Fine-tune the slim model of a one-shot method for N epochs on --data.")
@training_options
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Folder for plan.json, model.pt and report.json.")
def command(model, method, budget, min_keep, align, target, weights, input_shape, data_name, data_root, test_subset, epochs,
            consistency_lambda, finetune_epochs, train_subset, lr, batch_size, seed, resume, stop_after, threads, progress, out):
    from edgeprune.pruning.budget import Budget
    from edgeprune.pruning.folder import save_pruned
    from edgeprune.pruning.one_shot import prune_one_shot
    from edgeprune.train import jobs

    parsed = dataclasses.replace(Budget.parse(budget), min_keep=min_keep)  # cheap checks first: nothing is built on bad input
    if consistency_lambda is not None and method != "crsfp":
        raise click.UsageError(f"--lambda is CR-SFP's consistency weight; it is only valid with --method crsfp, not {method}")
    method_options = {} if consistency_lambda is None else {"consistency_lambda": consistency_lambda}
    training_time = jobs.is_training_time(method)
    if training_time and (data_name is None or epochs is None):
        raise click.UsageError(f"--method {method} prunes while training: pass --data and --epochs")
    if training_time and finetune_epochs:
        raise click.UsageError(f"--finetune-epochs is for one-shot methods; {method} trains with its masks for --epochs")
    if not training_time and epochs is not None:
        raise click.UsageError(f"--epochs trains a training-time method (dtp, sfp, crsfp); to fine-tune after {method} use --finetune-epochs")
    if finetune_epochs and data_name is None:
        raise click.UsageError("--finetune-epochs needs --data")
    align = resolve_align(align, target)
    set_threads(threads)
    dist = None
    if training_time or finetune_epochs:
        import torch

        from edgeprune.train.distributed import from_env

        dist = from_env()
        torch.manual_seed(seed)
    module, spec, shape = load_model(model, weights, input_shape)
    data = open_data_for(data_name, data_root, shape, train_subset, test_subset) if data_name else None
    run = dict(resume=resume, stop_after=stop_after, progress=progress, dist=dist)
    if training_time:
        config = train_config(epochs, lr, batch_size, seed, from_weights=weights is not None)
        result = jobs.prune_while_training(module, spec, shape, method, parsed, align, data, config, out,
                                           method_options=method_options, **run)
    else:
        result = prune_one_shot(module, spec, shape, method, parsed, align)
        if finetune_epochs:
            config = train_config(finetune_epochs, lr, batch_size, seed, from_weights=True)
            result = jobs.finetune(result, data, config, out, **run)
        else:
            if data is not None:
                result = jobs.with_accuracy(result, data)
            save_pruned(out, result.plan, result.model, result.report)
    if dist is not None and not dist.is_main:
        return
    if result is None:
        click.echo(f"stopped after epoch {stop_after}; continue with --resume")
        return
    r = result.report
    click.echo(f"{spec}  method={method}  budget={parsed}  align={align}")
    click.echo(f"  FLOPs   {r['flops_dense'] / 1e6:12.2f}M -> {r['flops_pruned'] / 1e6:12.2f}M  ({r['flops_ratio']:.4f})")
    click.echo(f"  params  {r['params_dense'] / 1e6:12.3f}M -> {r['params_pruned'] / 1e6:12.3f}M  ({r['params_ratio']:.4f})")
    click.echo(f"  parity  max|masked - slim| = {r['parity_max_abs_diff']:.2e} (relative {r['parity_rel_diff']:.2e})")
    if "accuracy" in r:
        click.echo(f"  top-1   {r['accuracy']:.4f} on {data.test.name} test")
    click.echo(f"  wrote   {out}/plan.json, model.pt, report.json")
