"""`edgeprune prune`: a `PruneRequest` from the options, run by the one prune job (`run_prune`).

One-shot criteria prune at once and may fine-tune afterwards (--finetune-epochs); training-time
methods prune while training (--epochs). Methods and their options come from the registry
(`edgeprune.methods`, `--option KEY=VALUE`); `--lambda` is the documented shorthand for CR-SFP's
``--option consistency_lambda=...``. `--from-plan PLAN --scratch E|B` trains a plan's slim
architecture from random initialisation instead (Scratch-E/B, `edgeprune.pruning.scratch`)."""

from __future__ import annotations

import click

from edgeprune.cli._options import MODEL_HELP, align_option, input_shape_option, target_option, weights_option
from edgeprune.cli._train_options import data_options, feed_options, parse_feed, set_threads, training_options
from edgeprune.pruning.request import DEFAULT_MIN_KEEP, cli_name


@click.command("prune", help="Prune MODEL to an exact budget and physically slim it; or, with --from-plan and "
               "--scratch, train a plan's slim architecture from random initialisation (MODEL may then be "
               "omitted: the plan names it).\n\n" + MODEL_HELP)
@click.argument("model", metavar="[MODEL]", required=False)
@click.option("--method", default=None,
              help="A registered pruning method (an unknown name lists them all) [default: l1]. One-shot criteria "
                   "(l1, l2, bn-scale, ...) prune at once, optionally fine-tuned with --finetune-epochs; "
                   "training-time methods (dtp, sfp, crsfp, ...) prune while training and need --data and --epochs.")
@click.option(
    "--budget",
    default=None,
    help="flops=F or params=P (fraction of dense to keep, e.g. flops=0.5), ratio=R (fraction of channels "
         "removed per group), latency=L (fraction of the dense model's latency on the target) or "
         "latency_ms=X (both with --latency-table); --method han takes sparsity=S (fraction of conv/linear "
         "weights zeroed). Required unless --from-plan.",
)
@click.option("--latency-table", "latency_table", type=click.Path(dir_okay=False), default=None, metavar="FILE",
              help="A latency table of the target (edgeprune latency-table), built on this machine: latency budgets "
                   "allocate by it, and the report gives the predicted latency. --align auto takes its target's.")
@click.option("--from-plan", "from_plan", type=click.Path(exists=False), default=None, metavar="PLAN",
              help="A plan.json (or a prune folder) whose slim architecture --scratch trains from random "
                   "initialisation.")
@click.option("--scratch", type=click.Choice(["E", "B"], case_sensitive=False), default=None,
              help="With --from-plan: E trains for --epochs (the dense model's epochs); B for "
                   "round(--epochs x dense FLOPs / pruned FLOPs), the same training compute.")
@click.option("--min-keep", default=DEFAULT_MIN_KEEP, show_default=True, type=click.FloatRange(0.0, 1.0),
              help="flops/params budgets: keep at least this fraction of every group's channels.")
@align_option
@target_option
@weights_option
@input_shape_option
@data_options
@feed_options
@click.option("--epochs", type=click.IntRange(min=1), default=None,
              help="Training epochs of a training-time method (dtp, sfp, crsfp); with --scratch, the dense "
                   "model's epochs.")
@click.option("--lambda", "consistency_lambda", type=click.FloatRange(min=0.0), default=None,
              help="crsfp only: weight of the symmetric KL between the full and the pruned network [default: 1.0].")
@click.option("--option", "method_option", multiple=True, metavar="KEY=VALUE",
              help="A method option (repeatable), e.g. --option consistency_lambda=0.5; VALUE is read as a "
                   "number, true/false, or else a string.")
@click.option("--finetune-epochs", type=click.IntRange(min=0), default=0, show_default=True,
              help="Fine-tune the slim model of a one-shot method for N epochs on --data.")
@training_options
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Folder for plan.json, model.pt and report.json.")
def command(model, method, budget, latency_table, from_plan, scratch, min_keep, align, target, weights, input_shape, data_name, data_root, test_subset, mean, std,
            augment, epochs,
            consistency_lambda, method_option, finetune_epochs, train_subset, lr, batch_size, seed, resume, stop_after, threads, progress, out):
    from edgeprune.models import parse_input_shape
    from edgeprune.pruning.request import PruneRequest

    mean, std = parse_feed(mean, std)
    if from_plan is not None and method is not None:
        raise click.UsageError("--method: not used with --from-plan; the plan fixes the architecture and "
                               "--scratch trains it from random initialisation")
    request = PruneRequest.build(
        model=model, budget=budget, out=out, method=method or "l1", from_plan=from_plan,
        scratch=scratch.upper() if scratch else None, latency_table=latency_table,
        options=_method_options(method_option, consistency_lambda),
        weights=weights, input_shape=parse_input_shape(input_shape), min_keep=min_keep,
        align=align if align == "auto" else _positive_int(align), target=target,
        data=data_name, data_root=data_root, train_subset=train_subset, test_subset=test_subset,
        augment=augment, mean=mean, std=std,
        epochs=epochs, finetune_epochs=finetune_epochs, lr=lr, batch_size=batch_size, seed=seed,
    )
    problems = request.problems()  # cheap checks first: nothing is built on bad input
    if problems:
        raise click.UsageError("\n".join(f"{cli_name(name)}: {message}" for name, message in problems))
    set_threads(threads)
    dist = None
    if request.trains:
        from edgeprune.train.distributed import from_env

        dist = from_env()
    import dataclasses
    import os

    from edgeprune.files.staging import Staging, partial_dir
    from edgeprune.pruning.job import run_prune

    if dist is not None and not dist.is_main:  # rank 0 holds --out; every rank runs in its build folder
        run_prune(dataclasses.replace(request, out=str(partial_dir(out))), resume=resume, stop_after=stop_after,
                  progress=progress, dist=dist)
        return
    if resume and not (partial_dir(out) / "checkpoint.pt").is_file():
        raise click.UsageError(f"--resume: there is no interrupted run to continue ({partial_dir(out)}/checkpoint.pt "
                               "does not exist); run without --resume")
    # Built in .OUT.partial/ beside --out and swapped in when complete: a failed or interrupted
    # run leaves the previous result in --out (an interrupted training keeps its checkpoint there).
    with Staging(out, resume=resume, keep_partial=request.trains) as stage:
        result = run_prune(dataclasses.replace(request, out=str(stage.path)), resume=resume, stop_after=stop_after,
                           progress=progress, dist=dist)
        if result is None:
            stage.keep()
            click.echo(f"stopped after epoch {stop_after}; continue with --resume")
            return
        stage.publish(sorted(p for p in os.listdir(stage.path) if p != "manifest.json"), marker="manifest.json")
    r = result.report
    click.echo(f"{r['spec']}  method={r['method']}  budget={r['budget']}  align={r['align']}")
    if "scratch" in r:
        s = r["scratch"]
        click.echo(f"  scratch {s['mode']}: {s['epochs']} epochs from random initialisation ({s['formula']}; "
                   f"dense {s['dense_epochs']} epochs, dense/pruned FLOPs {s['dense_over_pruned_flops']:.3f})")
    click.echo(f"  FLOPs   {r['flops_dense'] / 1e6:12.2f}M -> {r['flops_pruned'] / 1e6:12.2f}M  ({r['flops_ratio']:.4f})")
    click.echo(f"  params  {r['params_dense'] / 1e6:12.3f}M -> {r['params_pruned'] / 1e6:12.3f}M  ({r['params_ratio']:.4f})")
    if r.get("removed_blocks"):
        click.echo(f"  blocks  {len(r['removed_blocks'])} residual blocks removed (each now its shortcut): "
                   f"{', '.join(r['removed_blocks'])}")
    if r.get("latency"):
        lat = r["latency"]
        click.echo(f"  latency {lat['dense_predicted_ms']:12.3f} ms -> {lat['predicted_ms']:11.3f} ms  "
                   f"({lat['predicted_ratio']:.4f}), predicted on {lat['target']} ({lat.get('precision', 'fp32')}) "
                   "by the latency table")
        if "measured_ratio" in lat:
            click.echo(f"  measured {lat['measured_ratio']:.4f} of the dense model on {lat['target']} when calibrating "
                       f"({lat['measured_as']})")
    click.echo(f"  parity  max|masked - slim| = {r['parity_max_abs_diff']:.2e} (relative {r['parity_rel_diff']:.2e})")
    if "sparsity" in r:
        pruned, dense = r["sizes"]["pruned"], r["sizes"]["dense"]
        click.echo(f"  sparsity {r['sparsity']:.4f} of conv/linear weights are zero (target {r['target_sparsity']:g})")
        click.echo(f"  size    dense {dense['dense'] / 1e6:.3f} MB -> bitmask {pruned['bitmask'] / 1e6:.3f} MB, "
                   f"csr {pruned['csr'] / 1e6:.3f} MB, zipped model.pt {dense['model_pt_zipped'] / 1e6:.3f} -> "
                   f"{pruned['model_pt_zipped'] / 1e6:.3f} MB")
        click.echo(f"  note    {r['latency_note']}")
    for warning in r.get("warnings", []):
        click.echo(f"  WARNING {warning}")
    pre = r.get("preprocess")
    if pre:
        click.echo(f"  fed     mean {pre['mean']} std {pre['std']} on pixels in [0,1] ({pre['source']})")
        if request.weights is not None and str(pre["source"]).startswith("statistics of"):
            click.echo("  note    the preprocessing these weights were trained with is unknown, so the data's own "
                       "statistics were used; pass --mean/--std if the model expects something else")
    if "accuracy" in r:
        click.echo(f"  top-1   {r['accuracy']:.4f} on {r.get('test_samples', '?')} test images of {data_name}")
    click.echo(f"  wrote   {out}/plan.json, model.pt, report.json, manifest.json")


def _method_options(pairs: tuple[str, ...], consistency_lambda: float | None) -> dict:
    """--option KEY=VALUE pairs (and --lambda) as the method's options."""
    import json

    options = {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        if not sep or not key.strip():
            raise click.BadParameter(f"must be KEY=VALUE, got {pair!r}", param_hint="--option")
        try:
            value = json.loads(text)
        except ValueError:
            value = text
        options[key.strip()] = value
    if consistency_lambda is not None:
        options["consistency_lambda"] = consistency_lambda
    return options


def _positive_int(align: str) -> int | str:
    try:
        return int(align)
    except ValueError:
        raise click.BadParameter(f"must be a positive integer or 'auto', got {align!r}", param_hint="--align") from None
