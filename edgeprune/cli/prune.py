"""`edgeprune prune`: one-shot pruning to an exact budget, written as plan.json + model.pt + report.json."""

from __future__ import annotations

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


@click.command("prune", help="Prune MODEL to an exact budget and physically slim it.\n\n" + MODEL_HELP)
@model_argument
@click.option("--method", default="l1", show_default=True, help="Pruning criterion: l1, l2 or bn-scale.")
@click.option(
    "--budget",
    required=True,
    help="flops=F or params=P (fraction of dense to keep, e.g. flops=0.5), or ratio=R (fraction of channels removed per group).",
)
@align_option
@target_option
@weights_option
@input_shape_option
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Folder for plan.json, model.pt and report.json.")
def command(model, method, budget, align, target, weights, input_shape, out):
    from edgeprune.artifacts import save_pruned
    from edgeprune.budget import Budget
    from edgeprune.methods import get_method
    from edgeprune.pruning import prune_one_shot

    parsed = Budget.parse(budget)  # cheap checks first: nothing is built on bad input
    get_method(method)
    align = resolve_align(align, target)
    module, spec, shape = load_model(model, weights, input_shape)
    result = prune_one_shot(module, spec, shape, method, parsed, align)
    save_pruned(out, result.plan, result.model, result.report)
    r = result.report
    click.echo(f"{spec}  method={method}  budget={parsed}  align={align}")
    click.echo(f"  FLOPs   {r['flops_dense'] / 1e6:12.2f}M -> {r['flops_pruned'] / 1e6:12.2f}M  ({r['flops_ratio']:.4f})")
    click.echo(f"  params  {r['params_dense'] / 1e6:12.3f}M -> {r['params_pruned'] / 1e6:12.3f}M  ({r['params_ratio']:.4f})")
    click.echo(f"  parity  max|masked - slim| = {r['parity_max_abs_diff']:.2e} (relative {r['parity_rel_diff']:.2e})")
    click.echo(f"  wrote   {out}/plan.json, model.pt, report.json")
