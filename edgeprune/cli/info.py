"""`edgeprune info`: the channel groups of a model, their sizes and costs."""

from __future__ import annotations

import click

from edgeprune.cli._options import (
    MODEL_HELP,
    check_file_out,
    input_shape_option,
    load_model,
    model_argument,
    weights_option,
)


@click.command("info", help="Print the channel groups of MODEL, their sizes and costs.\n\n" + MODEL_HELP)
@model_argument
@weights_option
@input_shape_option
@click.option("--json", "json_path", type=click.Path(dir_okay=False), default=None, help="Also write the groups as JSON.")
def command(model, weights, input_shape, json_path):
    from edgeprune.files.atomic import write_json
    from edgeprune.pruning.graph import ChannelGraph

    check_file_out(json_path)
    module, spec, shape = load_model(model, weights, input_shape)
    graph = ChannelGraph(module, shape)
    cost = graph.cost
    flops, params = cost.dense("flops"), cost.dense("params")
    var = {g.index: i for i, g in enumerate(graph.prunable)}
    rows = []
    for g in graph.groups:
        i = var.get(g.index)
        share_f = cost.group_cost("flops", i, cost.sizes) / flops if i is not None else 0.0
        share_p = cost.group_cost("params", i, cost.sizes) / params if i is not None else 0.0
        rows.append(
            {"root": g.root, "size": g.size, "layers": len(g.members), "flops_share": share_f,
             "params_share": share_p, "prunable": g.prunable, "reason": g.reason,
             "members": [f"{m.module}:{m.dim}" for m in g.members]}
        )
    click.echo(f"{spec}  input {'x'.join(map(str, shape))}  FLOPs {flops / 1e6:.2f}M (MACs)  params {params / 1e6:.3f}M")
    click.echo(f"{len(graph.groups)} channel groups, {len(graph.prunable)} prunable\n")
    width = max(len(r["root"]) for r in rows)
    click.echo(f"{'#':>3}  {'root':<{width}}  {'size':>5}  {'layers':>6}  {'FLOPs%':>7}  {'params%':>7}  note")
    for n, r in enumerate(rows):
        note = "" if r["prunable"] else f"fixed: {r['reason']}"
        click.echo(
            f"{n:>3}  {r['root']:<{width}}  {r['size']:>5}  {r['layers']:>6}  "
            f"{100 * r['flops_share']:>6.1f}%  {100 * r['params_share']:>6.1f}%  {note}"
        )
    click.echo("\nFLOPs%/params%: share of the dense cost that depends on the group's width (shares overlap).")
    if json_path:
        write_json(json_path, {"spec": spec, "input_shape": list(shape), "flops": flops, "params": params, "groups": rows})
