"""Realized speedup of pruning on real runtimes: dense vs slim, timed side by side.

For each model, prune to flops=0.5 (l1) at several alignments, export dense and slim to
ONNX (batch 1), and time both interleaved (A B A B, same inputs) in one process with
ONNX Runtime and OpenVINO (f32) at 1 and 2 threads. The figure of merit is

    ratio = speedup x kept FLOPs fraction    (1.0: latency fell exactly as FLOPs did)

    .venv/bin/python benchmarks/realized_speedup.py [--models ...] [--runs 50] [--json PATH]

Prints a markdown table (for the README) and writes the full comparisons as JSON.
Weights are random: latency does not depend on their values.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

MODELS = ["torchvision:resnet18", "torchvision:resnet50", "torchvision:mobilenet_v2"]
ALIGNS = ["1", "8", "16", "auto"]
RUNTIMES = [  # (label, runtime, settings)
    ("ORT 1t", "ort", {"threads": 1}),
    ("ORT 2t", "ort", {"threads": 2}),
    ("OV 1t", "openvino", {"threads": 1, "streams": 1, "precision": "f32", "performance_hint": "LATENCY"}),
    ("OV 2t", "openvino", {"threads": 2, "streams": 1, "precision": "f32", "performance_hint": "LATENCY"}),
]
DEFAULT_TARGET = "x86-ort-1t"  # what `--align auto` resolves against by default


def export_onnx(model, shape, folder: Path, spec: str) -> Path:
    from edgeprune.export import ExportOptions, export_model
    from edgeprune.models.preprocess import default_preprocess

    result = export_model(
        model, shape, folder, preprocess=default_preprocess(spec, shape[1]),
        metadata={"edgeprune.spec": spec}, options=ExportOptions(formats=("onnx",), batch=1),
    )
    return result.files["onnx"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=MODELS)
    parser.add_argument("--aligns", nargs="+", default=ALIGNS)
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--json", default="benchmarks/results/realized_speedup.json")
    args = parser.parse_args()

    from edgeprune.models import build_model
    from edgeprune.profile.compare import compare_models
    from edgeprune.profile.machine import machine_info
    from edgeprune.profile.profiler import ProfileConfig
    from edgeprune.pruning.budget import Budget
    from edgeprune.pruning.one_shot import prune_one_shot
    from edgeprune.runtime.base import make_settings
    from edgeprune.targets import load_target

    auto = load_target(DEFAULT_TARGET).align
    config = ProfileConfig(runs=args.runs, warmup=args.warmup, batch=1)
    rows, results = [], []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        pairs = []  # (spec, align label, align, kept FLOPs, dense.onnx, slim.onnx)
        for spec in args.models:
            model, shape = build_model(spec)
            name = spec.split(":")[-1]
            dense_path = export_onnx(model, shape, tmp / name / "dense", spec)
            for align_text in args.aligns:
                align = auto if align_text == "auto" else int(align_text)
                pruned = prune_one_shot(model, spec, shape, "l1", Budget.parse("flops=0.5"), align)
                slim_path = export_onnx(pruned.model, shape, tmp / name / f"align{align_text}", spec)
                pairs.append((spec, align_text, align, pruned.report["flops_ratio"], dense_path, slim_path))
        # Runtimes in the outer loop: OpenVINO's thread pool outlives its models and competes
        # with ONNX Runtime's threads in the same process, so every ORT row is timed first.
        for rt_label, runtime, values in RUNTIMES:
            for spec, align_text, align, kept, dense_path, slim_path in pairs:
                name = spec.split(":")[-1]
                label = f"auto ({align})" if align_text == "auto" else str(align)
                result = compare_models(dense_path, slim_path, runtime, make_settings(runtime, values), config)
                speedup = result["speedup"]
                rows.append((name, label, rt_label, result["a"]["latency_ms"]["median"],
                             result["b"]["latency_ms"]["median"], speedup, kept, speedup * kept))
                results.append({"model": spec, "align": align, "align_option": align_text,
                                "runtime_label": rt_label, "kept_flops": kept, **result})
                print(f"{name:>14} align {label:>8} {rt_label:>6}: dense {rows[-1][3]:7.2f} ms  "
                      f"slim {rows[-1][4]:7.2f} ms  speedup {speedup:.2f}x  ratio {speedup * kept:.2f}", flush=True)
    rows.sort(key=lambda r: (args.models.index(next(m for m in args.models if m.endswith(":" + r[0]))),
                             [a for a in args.aligns].index(r[1].split(" ")[0]), r[2]))
    machine = machine_info()
    print(f"\nMachine: {machine.get('cpu')}, {machine.get('usable_cores')} cores, ISA {' '.join(machine.get('isa', []))}; batch 1, "
          f"{args.runs} interleaved rounds after {args.warmup} warm-up; OpenVINO at f32.\n")
    print("| model | align | runtime | dense ms | slim ms | speedup | kept FLOPs | ratio |")
    print("|---|---|---|---|---|---|---|---|")
    for name, label, rt, d, s, sp, kept, ratio in rows:
        print(f"| {name} | {label} | {rt} | {d:.2f} | {s:.2f} | {sp:.2f}x | {kept:.3f} | {ratio:.2f} |")
    out = Path(args.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"machine": machine, "runs": args.runs, "results": results}, indent=2))


if __name__ == "__main__":
    main()
