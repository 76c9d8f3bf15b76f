"""``edgeprune profile``: time a model on a target (or an explicit runtime) and write a report."""

from __future__ import annotations

import click


@click.command("profile")
@click.argument("model", type=click.Path(dir_okay=False, path_type=str))
@click.option("--target", "-t", "target_name", help="Target name (targets/NAME.toml) or path to a target TOML.")
@click.option("--runtime", "runtime_name", help="Runtime without a target: ort, openvino (or torch for .pt2).")
@click.option("--threads", type=click.IntRange(min=1), help="Threads (with --runtime; default: all usable cores).")
@click.option("--device", help="OpenVINO device (with --runtime openvino): CPU, GPU, NPU.")
@click.option("--precision", type=click.Choice(["f32", "bf16", "f16", "auto"]),
              help="OpenVINO inference precision hint (with --runtime openvino; default f32).")
@click.option("--runs", type=click.IntRange(min=1), help="Timed runs (default: the target's, else 100).")
@click.option("--warmup", type=click.IntRange(min=0), help="Untimed warm-up runs (default: the target's, else 10).")
@click.option("--batch", type=click.IntRange(min=1), help="Batch size for the first input dimension.")
@click.option("--shape", "shapes", multiple=True, metavar="NAME=D1xD2...",
              help="Input shape for dynamic inputs, e.g. input=1x3x224x224 (repeatable).")
@click.option("--per-layer", is_flag=True, help="Also profile per layer with the runtime's profiler.")
@click.option("--top", type=click.IntRange(min=1), default=15, show_default=True, help="Layers shown with --per-layer.")
@click.option("--name", "model_name", help="Model name that budgets are looked up by (default: the file stem, or the folder name for an exported model.onnx/model.xml).")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed for the random inputs.")
@click.option("--json", "json_path", type=click.Path(dir_okay=False), help="Write the report JSON here (atomically).")
@click.option("--no-progress", is_flag=True, help="No progress bar (it is off anyway when stderr is not a tty).")
def command(model, target_name, runtime_name, threads, device, precision, runs, warmup, batch, shapes,
            per_layer, top, model_name, seed, json_path, no_progress) -> None:
    """Time MODEL (.onnx, or OpenVINO .xml) and report latency statistics.

    Either --target fixes runtime, device, threads and precision, or --runtime picks a
    runtime with --threads/--device/--precision. Inputs are random (a fresh set per run,
    generated before timing); latency is measured with perf_counter around each run.
    """
    from edgeprune.errors import SpecError
    from edgeprune.files.atomic import write_json
    from edgeprune.profile import ProfileConfig, format_report, profile_model
    from edgeprune.runtime import make_settings, parse_shape_option, runtime_entry

    from edgeprune.cli._options import check_file_out
    from edgeprune.runtime.base import check_deployed_file

    if bool(target_name) == bool(runtime_name):
        raise click.UsageError("give exactly one of --target NAME or --runtime ort|openvino")
    check_deployed_file(model)
    check_file_out(json_path)
    if target_name:
        from edgeprune.targets import load_target

        clashing = [f for f, v in (("--threads", threads), ("--device", device), ("--precision", precision)) if v]
        if clashing:
            raise click.UsageError(f"{', '.join(clashing)} cannot be combined with --target (the target fixes them)")
        target = load_target(target_name)
        runtime, settings = target.runtime.name, target.runtime.settings
        defaults = target.profile
    else:
        target = None
        runtime = runtime_entry(runtime_name).name
        values = {"threads": threads}
        if device is not None:
            values["device"] = device
        if precision is not None:
            values["precision"] = precision
        unsupported = [k for k in values if k != "threads" and runtime != "openvino"]
        if unsupported:
            raise click.UsageError(f"--{unsupported[0]} applies to --runtime openvino only")
        settings = make_settings(runtime, values, where="options")
        defaults = ProfileConfig()
    config = ProfileConfig(
        runs=runs if runs is not None else defaults.runs,
        warmup=warmup if warmup is not None else defaults.warmup,
        batch=batch if batch is not None else defaults.batch,
    )
    parsed = dict(parse_shape_option(s) for s in shapes)
    if len(parsed) != len(shapes):
        raise SpecError("--shape names the same input twice")
    report = profile_model(
        model, runtime, settings, config, shapes=parsed, per_layer=per_layer, seed=seed,
        progress=not no_progress, target=target.name if target else None, name=model_name,
    )
    click.echo(format_report(report, top=top))
    if json_path:
        write_json(json_path, report)
        click.echo(f"\nwrote {json_path}")
