"""`edgeprune eval`: top-1 accuracy of a saved torch model (a train or prune output folder)."""

from __future__ import annotations

import click

from edgeprune.cli._train_options import data_options, set_threads


@click.command(
    "eval",
    help="Evaluate SRC, a folder written by `edgeprune train` (model.pt + metrics.json) or "
    "`edgeprune prune` (plan.json + model.pt), on the test split of --data.",
)
@click.argument("src", type=click.Path(exists=True))
@data_options
@click.option("--batch-size", type=click.IntRange(min=1), default=500, show_default=True)
@click.option("--threads", type=click.IntRange(min=1), default=None, help="torch intra-op threads.")
@click.option("--json", "json_path", type=click.Path(dir_okay=False), default=None, help="Also write the result as JSON.")
def command(src, data_name, data_root, test_subset, batch_size, threads, json_path):
    from edgeprune.atomic import write_json
    from edgeprune.data import open_data
    from edgeprune.train.jobs import load_saved
    from edgeprune.train.trainer import check_classes, evaluate

    if data_name is None:
        raise click.UsageError("--data is required (e.g. --data fashion-mnist)")
    set_threads(threads)
    model, spec, shape = load_saved(src)
    data = open_data(data_name, root=data_root, input_shape=shape, train_subset=1, test_subset=test_subset)
    check_classes(model, data, spec)
    result = evaluate(model, data.test, batch_size)
    click.echo(f"{spec}  {src}  {data.test.name} test ({result['samples']} images)  "
               f"top-1 {result['accuracy']:.4f}  loss {result['loss']:.4f}")
    if json_path:
        write_json(json_path, {"src": str(src), "spec": spec, "data": data.test.name, **result})
