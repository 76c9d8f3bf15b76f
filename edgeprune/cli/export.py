"""`edgeprune export`: a prune folder or a model spec -> model.onnx / OpenVINO IR + export.json."""

from __future__ import annotations

import click

from edgeprune.cli._options import MODEL_HELP, check_out, check_weights, input_shape_option, model_errors, weights_option

HELP = (
    "Export SRC to ONNX and/or OpenVINO IR in --out, after checking that torch, ONNX Runtime "
    "and OpenVINO (f32) compute the same logits. A failed check writes nothing.\n\n"
    "SRC is a folder written by `edgeprune prune` or `edgeprune train` (its manifest.json says what "
    "the model was fed: no --mean/--std needed) or a model spec. " + MODEL_HELP + "\n\n"
    "Files: model.onnx (input 'input', output 'logits', preprocessing and FLOPs in "
    "metadata_props), model.xml + model.bin, export.json (files, sizes, parity, versions), manifest.json."
)


@click.command("export", help=HELP)
@click.argument("src", metavar="SRC")
@click.option(
    "--format", "formats", multiple=True, type=click.Choice(["onnx", "openvino"]),
    help="Artifact to write; repeat for both. Default: onnx and openvino.",
)
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Folder for the artifacts and export.json.")
@click.option("--fp16", is_flag=True, help="Compress OpenVINO IR weights to FP16 (parity tolerance 1e-2 instead of 1e-4).")
@click.option("--opset", default=17, show_default=True, type=int, help="ONNX opset (>= 17).")
@weights_option
@input_shape_option
@click.option(
    "--batch", default="dynamic", show_default=True,
    help="'dynamic' (any batch; parity checked at 1 and 2) or a fixed batch size N.",
)
@click.option("--mean", default=None, help="Per-channel mean for pixels in [0,1], e.g. 0.485,0.456,0.406 (default: what SRC's folder records, else the spec's).")
@click.option("--std", default=None, help="Per-channel std for pixels in [0,1], e.g. 0.229,0.224,0.225 (default: what SRC's folder records, else the spec's).")
def command(src, formats, out, fp16, opset, weights, input_shape, batch, mean, std):
    from edgeprune.export import ExportOptions, export_model, load_source, parse_batch
    from edgeprune.models import parse_input_shape

    # Cheap checks first: nothing is built on bad input.
    fixed = parse_batch(batch)
    options = ExportOptions(formats=tuple(formats) or ("onnx", "openvino"), opset=opset, batch=fixed, fp16=fp16)
    options.validate()
    from edgeprune.export.exporter import check_dependencies

    check_dependencies(options)
    shape = parse_input_shape(input_shape)
    if shape is not None and fixed is not None and shape[0] not in (1, fixed):
        raise click.BadParameter(
            f"--input-shape has batch {shape[0]} but --batch is {fixed}; give one of them", param_hint="--batch"
        )
    check_out(out, beside=True)
    check_weights(weights)
    with model_errors(src):
        source = load_source(src, weights=weights, input_shape=shape)
    result = export_model(
        source.model, source.input_shape, out, preprocess=source.resolve_preprocess(mean, std),
        metadata=source.metadata, options=options, classes=source.classes,
    )
    r = result.report
    dims = "x".join("N" if d == "batch" else str(d) for d in r["input_shape"])
    batch_note = " (dynamic batch)" if fixed is None else ""
    click.echo(
        f"{source.spec}  input {dims}{batch_note}  opset {r['opset']}  "
        f"FLOPs {r['flops'] / 1e6:.2f}M (MACs)  params {r['params'] / 1e6:.3f}M"
    )
    if r["simplified"]:
        click.echo("  onnxsim  simplified")
    else:
        click.echo(f"  onnxsim  not simplified: {r['simplify_reason']}")
    for p in r["parity"].values():
        click.echo(
            f"  parity   {p['runtime']:<8} max|torch - {p['runtime']}| = {p['max_abs_diff']:.2e} "
            f"(relative {p['rel_diff']:.2e}, tolerance {p['tolerance_rel']:g}, {p['precision']})  "
            f"top-1 agreement {100 * p['top1_agreement']:.0f}%"
        )
    for warning in r["tracer_warnings"]:
        click.echo(f"  warning  torch.onnx tracer: {warning}")
    for f in r["files"]:
        click.echo(f"  wrote    {out}/{f['path']}  ({f['bytes'] / 1e6:.2f} MB)")
    click.echo(f"  wrote    {out}/export.json  ({r['timings_s']['total_s']:.1f} s)")
