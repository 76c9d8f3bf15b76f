"""int8 on this CPU with 8-bit and with 7-bit weight codes (reduce range), side by side.

On x86 CPUs without VNNI, ONNX Runtime's u8 x s8 kernels add pairs of products into a
saturating int16 (see edgeprune/quant/reduce_range.py). For each model this quantizes with
ACIQ + bias correction twice (reduce range off / on) and measures, against the fp32 file:

- ORT int8: the file on ONNX Runtime's int8 kernels (what deployment on this CPU gets);
- float QDQ: the same file with graph optimizations off (QDQ computed in float: what exact
  int8 kernels, e.g. VNNI, would give);
- OpenVINO: the file converted to IR on this CPU's int8 kernels.

    .venv/bin/python benchmarks/reduce_range.py --out runs/bench-rr --json runs/bench-rr/rr.json
    .venv/bin/python benchmarks/reduce_range.py --model dense=runs/demo/export/dense/model.onnx \\
        --model pruned=runs/demo/export/pruned/model.onnx      # + Fashion-MNIST models (full test split)

EfficientNet-Lite0 (real ImageNet weights) is calibrated on foolbox images 0-9 and measured on
images 10-19; Fashion-MNIST models on the training images of calibration/fashion-mnist.toml and
the 10000 test images. 1 thread.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))

from quant_accuracy import export_effnet, logits_of, normaliser, table  # noqa: E402


def openvino_logits(xml: Path, onnx_path: Path, images: np.ndarray, batch: int) -> np.ndarray:
    """Logits of the IR on OpenVINO's CPU plugin (1 thread, f32 hint), fed like logits_of feeds ORT."""
    import openvino as ov

    normalise = normaliser(onnx_path)
    core = ov.Core()
    model = core.read_model(str(xml))
    model.reshape({model.inputs[0].get_any_name(): ov.PartialShape([batch, *images.shape[1:]])})
    compiled = core.compile_model(model, "CPU", {"INFERENCE_NUM_THREADS": 1, "INFERENCE_PRECISION_HINT": "f32"})
    out = []
    for i in range(0, len(images), batch):
        x = normalise(images[i:i + batch])
        n = len(x)
        if n < batch:
            x = np.concatenate([x, np.repeat(x[-1:], batch - n, axis=0)])
        out.append(compiled({compiled.inputs[0]: x})[compiled.outputs[0]][:n])
    return np.concatenate(out)


def measure(name: str, fp32: Path, calib: str, images: np.ndarray, labels: np.ndarray, out: Path, batch: int):
    from edgeprune.quant import QuantizeConfig, quantize_onnx
    from edgeprune.quant.metrics import sqnr_db, top1, top1_agreement

    ref = logits_of(fp32, images, batch=batch)
    rows = [{"model": name, "setting": "fp32", "top1": top1(ref, labels)}]
    for setting in ("off", "on"):
        config = QuantizeConfig(method="aciq", bias_correction=True, reduce_range=setting, openvino=True)
        r = quantize_onnx(fp32, calib, out / name / setting, config, progress=False)
        q = r.files["onnx"]
        views = {"ORT int8": logits_of(q, images, batch=batch),
                 "float QDQ": logits_of(q, images, optimize=False, batch=batch),
                 "OpenVINO": openvino_logits(r.files["openvino"], q, images, batch)}
        for view, got in views.items():
            rows.append({"model": name, "setting": f"{r.report['weight_code_bits']}-bit codes", "view": view,
                         "top1": top1(got, labels), "agreement": top1_agreement(ref, got),
                         "sqnr_db": sqnr_db(ref, got)})
            print(f"{name}: reduce range {setting:<3} {view:<9} SQNR {rows[-1]['sqnr_db']:6.2f} dB  "
                  f"top-1 {rows[-1]['top1']:.4f}", file=sys.stderr, flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", action="append", default=[], help="NAME=path/to/fashion-mnist/model.onnx")
    parser.add_argument("--calib", default="calibration/fashion-mnist.toml")
    parser.add_argument("--no-effnet", action="store_true")
    parser.add_argument("--out", default="runs/bench-rr")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    from edgeprune.profile.machine import machine_info
    from edgeprune.quant.calibration import open_calibration
    from edgeprune.quant.reduce_range import resolve_reduce_range

    out = Path(args.out)
    rows = []
    if not args.no_effnet:
        fp32 = export_effnet(out / "effnet" / "fp32")
        calib = "calibration/foolbox-imagenet.toml"
        cal = open_calibration(calib, fp32)
        held = slice(cal.n_calib, cal.n_calib + cal.n_holdout)
        rows += measure("EfficientNet-Lite0", fp32, calib, cal.images[held], cal.labels[held], out, 10)
    if args.model:
        from edgeprune.data import open_data

        data = open_data("fashion-mnist", train_subset=1)
        images, labels = data.test.images.numpy(), data.test.labels.numpy()
        for spec in args.model:
            name, _, path = spec.partition("=")
            rows += measure(name, Path(path), args.calib, images, labels, out, 250)
    machine = machine_info()
    print(f"machine: {machine['cpu']}, ISA {' '.join(machine['isa'])}; auto decides: "
          f"{resolve_reduce_range('auto', machine).reason}\n")
    print(table(rows, [("model", lambda r: r["model"]), ("weights", lambda r: r["setting"]),
                       ("run as", lambda r: r.get("view", "fp32")),
                       ("top-1 %", lambda r: f"{100 * r['top1']:.2f}"),
                       ("agreement %", lambda r: f"{100 * r['agreement']:.2f}" if "agreement" in r else "100.00"),
                       ("SQNR dB", lambda r: f"{r['sqnr_db']:.2f}" if "sqnr_db" in r else "-")]))
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps({"machine": machine, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
