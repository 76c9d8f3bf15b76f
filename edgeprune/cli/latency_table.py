"""``edgeprune latency-table``: time every prunable layer's operator of a model on a target, at
the widths pruning may give it, into a reusable JSON table."""

from __future__ import annotations

import click


@click.command("latency-table")
@click.argument("model")
@click.option("--target", "-t", "target_name", required=True, help="Target name or path to a target TOML.")
@click.option("--out", "out", required=True, type=click.Path(dir_okay=False),
              help="The table (JSON). An existing table for the same machine and runtime is extended.")
@click.option("--input-shape", help="Model input, e.g. 1x3x224x224 (default: the spec's).")
@click.option("--step", type=click.IntRange(min=1), default=16, show_default=True,
              help="Widths are measured at multiples of this (the target's block size).")
@click.option("--points", type=click.IntRange(min=2), default=8, show_default=True,
              help="At most this many widths per swept dimension (plus the full width).")
@click.option("--checks", type=click.IntRange(min=0), default=2, show_default=True,
              help="Off-sweep points per layer where the interpolation is checked against a measurement.")
@click.option("--runs", type=click.IntRange(min=1), default=30, show_default=True, help="Timed runs per point.")
@click.option("--warmup", type=click.IntRange(min=0), default=5, show_default=True, help="Untimed runs per point.")
@click.option("--precision", type=click.Choice(["fp32", "int8"]), default="fp32", show_default=True,
              help="The operators' precision: int8 times their QDQ graphs (what a quantized model runs). One "
                   "precision per table.")
@click.option("--no-progress", is_flag=True, help="No progress bar.")
def command(model, target_name, out, input_shape, step, points, checks, runs, warmup, precision, no_progress) -> None:
    """Time the Conv / Gemm operators of MODEL (a model spec) on --target's runtime and thread
    settings, each as a one-operator ONNX graph, over a bounded grid of its prunable widths;
    write them keyed by operator signature with the machine and runtime they hold for. Prints
    the interpolation error measured at the check points."""
    from pathlib import Path

    from edgeprune.cli._options import check_file_out
    from edgeprune.latency.table import LatencyTable, build_table, summary
    from edgeprune.models import build_model
    from edgeprune.models.spec import parse_input_shape
    from edgeprune.pruning.graph import ChannelGraph
    from edgeprune.latency.layers import model_layers
    from edgeprune.targets import load_target

    check_file_out(out, "--out")
    target = load_target(target_name)
    existing = LatencyTable.load(out) if Path(out).is_file() else None
    net, shape = build_model(model, parse_input_shape(input_shape))
    layers = model_layers(net, shape, ChannelGraph(net, shape), precision)
    table = build_table(layers, target, step=step, points=points, checks=checks, runs=runs, warmup=warmup,
                        existing=existing, progress=not no_progress)
    table.save(out)
    s = summary(table)
    click.echo(f"{model} on {target.name} ({table.runtime.get('runtime')} {table.runtime.get('runtime_version')}, "
               f"{table.runtime.get('threads')} thread(s), {table.precision}; {table.machine.get('cpu')}, "
               f"ISA {' '.join(table.machine.get('isa') or [])})")
    if table.staircase:
        click.echo(f"  block   {table.block} channels (widths inside a block run as its widest; measured on a "
                   f"64 -> 33..96 3x3 conv)")
    click.echo(f"  layers  {s['layers']} ({s['operators']} operator signatures, {s['points']} points in the table; "
               f"{table.timed} timed now in {s['build_s']:.1f} s)")
    click.echo(f"  dense   {s['layers_dense_ms']:.3f} ms summed over the layers' operators")
    if s["check_points"]:
        click.echo(f"  error   interpolation vs measurement at {s['check_points']} check points: median "
                   f"{100 * s['check_error_median']:.1f}%, max {100 * s['check_error_max']:.1f}%")
    click.echo(f"  wrote   {out}")
