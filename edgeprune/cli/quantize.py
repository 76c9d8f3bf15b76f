"""`edgeprune quantize`: fp32 ONNX + calibration manifest -> QDQ int8 ONNX (+ IR), quantize.json,
manifest.json."""

from __future__ import annotations

import click

HELP = (
    "Quantize MODEL (an fp32 ONNX file) with the calibration images a manifest names "
    "(a .toml path, or a bare NAME: ./calibration, $EDGEPRUNE_CALIBRATION, built-ins). Writes "
    "--out/model.onnx (QDQ: uint8 activations, int8 per-channel weights), model.xml + model.bin "
    "(OpenVINO IR, for 8-bit runs), "
    "quantize.json (ranges, SQNR and top-1 agreement vs fp32 on the manifest's held-out samples), "
    "and manifest.json (the folder's artifact manifest, written last).\n\n"
    "Methods: aciq (analytical clipping, Banner et al.), or onnxruntime's minmax, entropy and "
    "percentile calibrators as baselines. W8A8 runs as real int8; lower bit widths are simulated "
    "(exact numbers, no speedup) and the report says so. Preprocessing comes from the model's "
    "edgeprune.preprocess metadata (the manifest's mean/std only when the model has none)."
)


@click.command("quantize", help=HELP)
@click.argument("model", type=click.Path(dir_okay=False))
@click.option("--calib", required=True,
              help="Calibration manifest: a .toml path, or a NAME looked up in ./calibration, "
              "$EDGEPRUNE_CALIBRATION, then the built-in manifests.")
@click.option("--method", type=click.Choice(["aciq", "minmax", "entropy", "percentile"]), default="aciq",
              show_default=True, help="How activation ranges (and weight clipping) are chosen.")
@click.option("--weight-bits", type=click.IntRange(2, 8), default=8, show_default=True,
              help="Weight bits (per output channel); below 8 is simulated.")
@click.option("--act-bits", type=click.Choice(["4", "8"]), default="8", show_default=True,
              help="Activation bits (per tensor); 4 is simulated (uint4 QDQ).")
@click.option("--bias-correction", "bias_correction", is_flag=True, help="Fold the expected quantization error into the biases.")
@click.option("--bias-correction-kind", type=click.Choice(["data", "mean-var", "both"]), default="data",
              show_default=True, help="data: E[Wx] - E[Q(W)x]; mean-var: Banner's per-channel mean/variance "
              "correction; both: mean-var scale then data-driven bias.")
@click.option("--bit-allocation/--no-bit-allocation", default=None,
              help="Per-channel weight bit allocation under the --weight-bits average (default: on for aciq below 8 bits).")
@click.option("--openvino/--no-openvino", default=None,
              help="Also write OpenVINO IR and check it (default: when openvino is installed and the run is 8-bit).")
@click.option("--reduce-range", type=click.Choice(["auto", "on", "off"]), default="auto", show_default=True,
              help="Weights on 7-bit codes, so that x86 int8 kernels without VNNI (AVX2, AVX-512 without VNNI) "
              "do not saturate. auto: as --target's [quantize] reduce_range says, else on when this CPU lacks VNNI.")
@click.option("--target", "-t", "target_name", default=None,
              help="Device the model is quantized for (target name, looked up in ./targets, $EDGEPRUNE_TARGETS, "
              "then the built-ins; or a target TOML path): its [quantize] reduce_range decides --reduce-range auto.")
@click.option("--progress/--no-progress", default=True, show_default=True, help="Progress bar over calibration.")
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Folder for model.onnx and quantize.json.")
def command(model, calib, method, weight_bits, act_bits, bias_correction, bias_correction_kind, bit_allocation,
            openvino, reduce_range, target_name, progress, out):
    from pathlib import Path

    from edgeprune.cli._options import check_out
    from edgeprune.errors import SpecError
    from edgeprune.quant import QuantizeConfig, quantize_onnx
    from edgeprune.runtime.base import check_deployed_file

    if Path(model).suffix.lower() in (".xml", ".bin"):
        raise SpecError(f"MODEL {model}: quantize reads an fp32 ONNX file (.onnx), not OpenVINO IR; give the "
                        "model.onnx it was exported from (the int8 IR is written for you)")
    check_deployed_file(model)  # a truncated or damaged ONNX file is named before any work
    check_out(out, beside=True)
    config = QuantizeConfig(
        method=method, weight_bits=weight_bits, act_bits=int(act_bits),
        bias_correction=bias_correction_kind if bias_correction else None,
        bit_allocation=bit_allocation, openvino=openvino, reduce_range=reduce_range, target=target_name,
    )
    result = quantize_onnx(model, calib, out, config, progress=progress)
    click.echo(format_summary(result.report, out))


def format_summary(r: dict, out: str) -> str:
    cal = r["calibration"]
    ev = r["evaluation"]
    lines = [
        f"{r['model']}  ->  W{r['weight_bits']}A{r['act_bits']} {r['method']}"
        + (f" + bias correction ({r['bias_correction']})" if r["bias_correction"] else "")
        + ("  [real int8]" if r["real_int8"] else "  [simulated]"),
        f"  calibration  {cal['calibration_samples']} samples from {cal['manifest']}; preprocess from "
        f"{cal['preprocess']['from']}",
        "",
        f"  {'check':<34} {'value':>10}",
        f"  {'-' * 34} {'-' * 10}",
        f"  {'SQNR of logits vs fp32 (dB)':<34} {ev['sqnr_db']:>10}",
        f"  {'top-1 agreement with fp32':<34} {ev['top1_agreement']:>10.4f}",
        f"  {'  on':<34} {str(ev['count']) + ' ' + ev['samples'].split(' ')[0]:>10}",
    ]
    if "top1_fp32" in ev:
        lines.append(f"  {'top-1 fp32 / quantized (labels)':<34} {ev['top1_fp32']:.4f} / {ev['top1_quantized']:.4f}")
    q = r["graph"]["ops"]
    lines.append(f"  {'QuantizeLinear / DequantizeLinear':<34} {q.get('QuantizeLinear', 0):>4} / {q.get('DequantizeLinear', 0)}")
    lines.append(f"  {'integer weight tensors':<34} {r['graph']['weight_initializers']}")
    left = r["ops_left_in_float"]
    lines.append(f"  {'ops left in float':<34} {left if left else 'none'}")
    if "sqnr_db_float_qdq" in ev:
        lines.append(f"  {'SQNR of the QDQ file in float (dB)':<34} {ev['sqnr_db_float_qdq']:>10}")
    rr = r["reduce_range"]
    decided = {"target": f", decided by target {rr.get('target')}", "cpu": ", decided on this CPU"}.get(
        rr.get("decided_by"), "")
    lines.append(f"  {'weight codes':<34} {str(r['weight_code_bits']) + ' bits':>10}  (reduce range {rr['setting']}: "
                 f"{'on' if rr['enabled'] else 'off'}{decided})")
    if r.get("openvino"):
        ov = r["openvino"]
        lines.append(f"  {'OpenVINO vs fp32: SQNR / top-1':<34} {ov['sqnr_vs_fp32_db']} dB / "
                     f"{ov['top1_agreement_vs_fp32']:.4f}")
        lines.append(f"  {'OpenVINO vs ORT int8: SQNR / top-1':<34} {ov['sqnr_vs_ort_int8_db']} dB / "
                     f"{ov['top1_agreement_vs_ort_int8']:.4f}")
        lines.append(f"  {'OpenVINO conv/fc layers':<34} {ov['layers_by_precision_and_kernel']}")
    lines.append(f"  {r['execution']}")
    for w in r.get("warnings", []):
        lines.append(f"  WARNING: {w}")
    for f in r["files"]:
        lines.append(f"  wrote  {out}/{f['path']}")
    lines.append(f"  wrote  {out}/quantize.json, {out}/manifest.json  ({r['timings_s']['total_s']:.1f} s)")
    return "\n".join(lines)
