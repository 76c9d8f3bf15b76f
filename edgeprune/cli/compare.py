"""``edgeprune compare``: time two models interleaved on a target and report the speedup."""

from __future__ import annotations

import click


@click.command("compare")
@click.argument("model_a", type=click.Path(dir_okay=False))
@click.argument("model_b", type=click.Path(dir_okay=False))
@click.option("--target", "-t", "target_name", required=True, help="Target name or path to a target TOML.")
@click.option("--rounds", type=click.IntRange(min=1), help="Timed rounds, each runs A then B (default: the target's runs).")
@click.option("--warmup", type=click.IntRange(min=0), help="Untimed warm-up rounds (default: the target's).")
@click.option("--batch", type=click.IntRange(min=1), help="Batch size (default: the target's).")
@click.option("--shape", "shapes", multiple=True, metavar="NAME=D1xD2...", help="Input shape for dynamic inputs (repeatable).")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed for the random inputs.")
@click.option("--json", "json_path", type=click.Path(dir_okay=False), help="Write the comparison JSON here.")
@click.option("--name-a", help="Model name of A in its profile report (budgets are looked up by it).")
@click.option("--name-b", help="Model name of B in its profile report.")
@click.option("--report-a", type=click.Path(dir_okay=False),
              help="Write A's profile report here (the `edgeprune profile --json` schema, marked interleaved): "
                   "`edgeprune check B.json --baseline A.json` then uses the paired per-round ratio.")
@click.option("--report-b", type=click.Path(dir_okay=False), help="Write B's profile report here.")
@click.option("--no-progress", is_flag=True, help="No progress bar.")
def command(model_a, model_b, target_name, rounds, warmup, batch, shapes, seed, json_path, name_a, name_b,
            report_a, report_b, no_progress) -> None:
    """Time MODEL_A and MODEL_B interleaved (A B A B ...) on the same inputs; print both
    medians, the speedup of B over A, and the FLOPs ratio when both files carry
    edgeprune.flops metadata."""
    from edgeprune.files.atomic import write_json
    from edgeprune.profile import ProfileConfig
    from edgeprune.profile.compare import compare_models, format_comparison
    from edgeprune.runtime import parse_shape_option
    from edgeprune.targets import load_target

    from edgeprune.cli._options import check_file_out
    from edgeprune.runtime.base import check_deployed_file

    check_deployed_file(model_a)
    check_deployed_file(model_b)
    for path, option in ((json_path, "--json"), (report_a, "--report-a"), (report_b, "--report-b")):
        check_file_out(path, option)
    target = load_target(target_name)
    config = ProfileConfig(
        runs=rounds if rounds is not None else target.profile.runs,
        warmup=warmup if warmup is not None else target.profile.warmup,
        batch=batch if batch is not None else target.profile.batch,
    )
    result = compare_models(
        model_a, model_b, target.runtime.name, target.runtime.settings, config,
        shapes=dict(parse_shape_option(s) for s in shapes), seed=seed,
        progress=not no_progress, target=target.name, names=[name_a, name_b],
    )
    reports = result.pop("profile_reports")
    click.echo(format_comparison(result))
    if json_path:
        write_json(json_path, result)
        click.echo(f"\nwrote {json_path}")
    for side, path in (("a", report_a), ("b", report_b)):
        if path:
            write_json(path, reports[side])
            click.echo(f"wrote {path}")
