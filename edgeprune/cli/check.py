"""``edgeprune check``: hold profile reports to a target's latency budgets (exit 1 if broken)."""

from __future__ import annotations

import sys

import click


@click.command("check")
@click.argument("reports", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("--target", "-t", "target_name", required=True, help="Target whose budgets apply (name or TOML path).")
@click.option("--baseline", type=click.Path(dir_okay=False),
              help="Dense baseline report from the same run; enables the target's max_ratio budget.")
@click.option("--max-ratio", type=click.FloatRange(min=0.0, min_open=True), default=None,
              help="Relative budget for --baseline (pruned median / dense median); default: the target's budgets.max_ratio.")
@click.option("--strict", is_flag=True, help="A report with no applicable budget fails (default: passes, noted).")
@click.option("--json", "json_path", type=click.Path(dir_okay=False), help="Write the verdicts as JSON here.")
def command(reports, target_name, baseline, max_ratio, strict, json_path) -> None:
    """Check profile REPORTS (from `edgeprune profile --json`) against budgets.

    Absolute budgets come from the target's budgets.latency_ms by model name; with
    --baseline, each report's median / baseline median must be <= budgets.max_ratio (or
    --max-ratio); a target without one checks its absolute budgets and says the ratio is not held
    to a budget. Exit status: 0 all within budget (or no budget), 1 a budget is broken, 2 bad input.
    """
    from edgeprune.budget_check import check_budgets, format_verdicts, read_check_input
    from edgeprune.files.atomic import write_json
    from edgeprune.targets import load_target

    import dataclasses

    from edgeprune.cli._options import check_file_out

    check_file_out(json_path)
    target = load_target(target_name)
    if max_ratio is not None:
        target = dataclasses.replace(target, budgets=dataclasses.replace(target.budgets, max_ratio=max_ratio))
    loaded = [(path, read_check_input(path)) for path in reports]  # inputs are checked as inputs (exit 2)
    base = (baseline, read_check_input(baseline)) if baseline else None
    if base is not None and target.budgets.max_ratio is None:
        click.echo(f"note: target {target.name} has no budgets.max_ratio, so the ratio to --baseline is not held "
                   "to a budget (give --max-ratio R); its absolute budgets apply")
        base = None
    verdicts = check_budgets(loaded, target, base, strict=strict)
    click.echo(format_verdicts(verdicts, target))
    passed = not any(v.failed for v in verdicts)
    if json_path:
        write_json(json_path, {
            "target": target.name,
            "baseline": baseline,
            "strict": strict,
            "passed": passed,
            "results": [v.to_dict() for v in verdicts],
        })
    if not passed:
        sys.exit(1)
