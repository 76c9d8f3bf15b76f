"""`edgeprune eval`: top-1 accuracy of a saved model: a torch folder (train or prune output),
an ONNX file or an OpenVINO IR, each in its own runtime."""

from __future__ import annotations

from pathlib import Path

import click

from edgeprune.cli._train_options import data_options, set_threads


@click.command(
    "eval",
    help="Evaluate SRC on the test split of --data: a folder written by `edgeprune train` or "
    "`edgeprune prune` (checked against its manifest.json) runs in torch; a model.onnx runs in ONNX "
    "Runtime and a model.xml in OpenVINO (f32), fed as the file's edgeprune.preprocess metadata says, "
    "resized to the file's input shape (no torch needed for files).",
)
@click.argument("src", type=click.Path(exists=True))
@data_options
@click.option("--batch-size", type=click.IntRange(min=1), default=500, show_default=True)
@click.option("--threads", type=click.IntRange(min=1), default=None, help="torch intra-op threads.")
@click.option("--runtime", default=None, help="For a model file: ort or openvino (default: by suffix, .onnx -> ort, .xml -> openvino).")
@click.option("--json", "json_path", type=click.Path(dir_okay=False), default=None, help="Also write the result as JSON.")
def command(src, data_name, data_root, test_subset, batch_size, threads, runtime, json_path):
    from edgeprune.files.atomic import write_json

    from edgeprune.cli._options import check_file_out

    if data_name is None:
        raise click.UsageError("--data is required (e.g. --data fashion-mnist)")
    check_file_out(json_path)
    if Path(src).is_file():  # a deployed file: its own runtime, no torch
        from edgeprune.data import open_test_arrays
        from edgeprune.deployed_eval import evaluate_deployed, model_input_shape
        from edgeprune.runtime.base import check_deployed_file

        check_deployed_file(src)  # a truncated .onnx, an .xml without its .bin: named, before any work

        shape = model_input_shape(src, runtime)
        data = open_test_arrays(data_name, int(shape[1]), (int(shape[2]), int(shape[3])), root=data_root,
                                test_subset=test_subset)
        result = evaluate_deployed(src, data, min(batch_size, 100), runtime)
        click.echo(f"{src}  {result['runtime']} ({result['precision']})  {data.name} test "
                   f"({result['samples']} images)  top-1 {result['accuracy']:.4f}  [{result['preprocess']}]")
        if json_path:
            write_json(json_path, {"src": str(src), "data": data.name, **result})
        return
    from edgeprune.data import open_data
    from edgeprune.models.saved import load_saved
    from edgeprune.train.trainer import check_classes, evaluate

    set_threads(threads)
    saved = load_saved(src)
    model, spec, shape = saved.model, saved.spec, saved.input_shape
    pre = saved.manifest.preprocess
    norm = None
    if pre:  # fed the way the model was trained (its manifest), not the data's own statistics
        from edgeprune.data import Normalization

        norm = Normalization(tuple(pre["mean"]), tuple(pre["std"]), str(pre.get("source", "")))
    data = open_data(data_name, root=data_root, input_shape=shape, train_subset=1, test_subset=test_subset,
                     normalization=norm)
    check_classes(model, data, spec)
    result = evaluate(model, data.test, batch_size)
    click.echo(f"{spec}  {src}  {data.test.name} test ({result['samples']} images)  "
               f"top-1 {result['accuracy']:.4f}  loss {result['loss']:.4f}")
    if json_path:
        write_json(json_path, {"src": str(src), "spec": spec, "data": data.test.name, **result})
