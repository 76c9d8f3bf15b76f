"""`edgeprune pipeline`: one TOML config from a dense model to a profiled, budget-checked
pruned (and quantized) artifact, with a report."""

from __future__ import annotations

import sys

import click

HELP = (
    "Run the pipeline CONFIG describes (see examples/*.toml): train or load the dense model, "
    "prune it (training-time or one-shot + fine-tune) and slim it, export dense and pruned "
    "models, quantize the pruned one, evaluate every deployed artifact, profile each on every "
    "target, check budgets, and write OUT/report.md, OUT/report.json (and report.png with "
    "matplotlib).\n\n"
    "The whole config is validated first; a bad one exits 2 naming FILE: section.key, before "
    "anything is written. Each stage keeps its artifacts in OUT/<stage>/ with a stage.json; a "
    "re-run skips stages whose config and inputs are unchanged. Exit status: 0 done (or stopped "
    "with --stop-after), 1 a budget check failed, 2 bad input."
)


def _parse_stop(values) -> dict[str, int]:
    stops = {}
    for text in values:
        stage, sep, epoch = text.partition(":")
        if stage not in ("dense", "prune") or not sep or not epoch.isdigit() or int(epoch) < 1:
            raise click.BadParameter(f"{text!r}: use dense:EPOCH or prune:EPOCH (EPOCH a positive integer)",
                                     param_hint="--stop-after")
        if stage in stops:
            raise click.BadParameter(f"{text!r}: the {stage} stage is named twice", param_hint="--stop-after")
        stops[stage] = int(epoch)
    return stops


@click.command("pipeline", help=HELP)
@click.argument("config", type=click.Path(dir_okay=False))
@click.option("--out", type=click.Path(file_okay=False), default=None,
              help="Folder for every stage's artifacts and the report. Default: runs/<config name>.")
@click.option("--resume", is_flag=True,
              help="Continue an interrupted training stage from its checkpoint (finished stages are skipped anyway).")
@click.option("--threads", type=click.IntRange(min=1), default=None,
              help="torch intra-op threads for training and export (profiling uses each target's own threads).")
@click.option("--stop-after", "stop_after", multiple=True, metavar="STAGE:EPOCH",
              help="Stop the dense or prune training after that epoch (checkpoint kept; continue with --resume).")
@click.option("--progress/--no-progress", default=True, show_default=True, help="Progress bars on stderr.")
def command(config, out, resume, threads, stop_after, progress):
    from pathlib import Path

    from edgeprune.pipeline import load_config, run_pipeline

    from edgeprune.cli._options import check_out
    from edgeprune.pipeline.config import check_stop_after

    stops = _parse_stop(stop_after)
    cfg = load_config(config)  # validates everything; nothing is written before this passes
    check_stop_after(cfg, stops)  # a stop that would never happen is an error, not ignored
    out = Path(out) if out else Path("runs") / cfg.name
    check_out(str(out), beside=False)
    if threads:
        import torch

        torch.set_num_threads(threads)
    try:
        outcome = run_pipeline(cfg, out, resume=resume, progress=progress, stop_after=stops, echo=click.echo)
    except KeyboardInterrupt:
        sys.exit(130)  # the runner said what was kept; 128 + SIGINT, as shells report Ctrl-C
    if not outcome.complete:
        return
    report = outcome.report
    click.echo(f"wrote {out}/report.md, {out}/report.json" + (f", {out}/{report['plot']}" if report.get("plot") else ""))
    if not report["passed"]:
        from edgeprune.budget_check import UNRELIABLE

        failed = [c for c in report["checks"] if not c["passed"]]
        noisy = sum(c["verdict"] == UNRELIABLE for c in failed)
        parts = [f"{len(failed) - noisy} budget check(s) failed"] if len(failed) > noisy else []
        if noisy:
            parts.append(f"{noisy} unreliable (still within noise after re-measuring; "
                         "[budgets] unreliable = \"warn\" lets them pass)")
        click.echo(f"{', '.join(parts)}; see {out}/report.md", err=True)
        sys.exit(1)
    click.echo(f"all {len(report['checks'])} checks passed" if report["checks"] else "no budget checks configured")
