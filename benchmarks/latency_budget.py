"""Latency budgets on the target: does ``--budget latency=0.5`` give a model that measures half
the dense latency, and how does it compare with FLOPs-allocated pruning at the same latency?

For each model and target:
  1. build (or extend) the model's latency table on the target (`edgeprune latency-table`);
  2. prune (l1) to ``latency=L``: the calibrated table predicts the pruned model's ms;
  3. prune (l1) to ``flops=F`` for several F (the FLOPs-allocated baseline);
  4. export dense and every pruned model to ONNX (batch 1) and time them all interleaved in one
     loop on the target's runtime and settings (A B C ... A B C, same inputs).
Reported: measured pruned / dense ratio of the latency-allocated model, its predicted ms vs
measured ms, and the FLOPs the FLOPs-allocated models keep at the same measured latency
(interpolated between the F values), plus the speedup realized vs requested.

    .venv/bin/python benchmarks/latency_budget.py [--models ...] [--targets ...] [--latency 0.5]

Weights are random (latency does not depend on them); tables are kept in --tables and reused.
Prints a markdown table and writes JSON (--json).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

MODELS = ["torchvision:resnet18", "torchvision:mobilenet_v2", "torchvision:efficientnet_b0"]
TARGETS = ["x86-ort-1t", "x86-openvino-cpu"]
FLOPS = [0.3, 0.35, 0.4, 0.45, 0.5]


def interpolate_flops(points: list[tuple[float, float]], ratio: float) -> float | None:
    """The FLOPs fraction at which the FLOPs-allocated models' measured ratio is ``ratio``
    (linear between the measured (flops, ratio) points; None outside them)."""
    pts = sorted(points, key=lambda p: p[1])
    for (f0, r0), (f1, r1) in zip(pts, pts[1:]):
        if r0 <= ratio <= r1:
            return f0 if r1 == r0 else f0 + (f1 - f0) * (ratio - r0) / (r1 - r0)
    return None


def run_one(spec: str, target_name: str, args) -> dict:
    import torch

    from edgeprune.latency.calibrate import export_for_timing, time_models
    from edgeprune.latency.layers import model_layers
    from edgeprune.latency.source import LatencySource
    from edgeprune.latency.table import LatencyTable, build_table, summary
    from edgeprune.models import build_model
    from edgeprune.pruning.budget import Budget
    from edgeprune.pruning.graph import ChannelGraph
    from edgeprune.pruning.one_shot import prune_one_shot
    from edgeprune.targets import load_target

    target = load_target(target_name)
    torch.manual_seed(0)
    model, shape = build_model(spec)
    model.eval()
    name = spec.split(":")[-1]
    table_path = Path(args.tables) / f"{name}.{target.name}.json"
    existing = LatencyTable.load(table_path) if table_path.is_file() else None
    t0 = time.perf_counter()
    table = build_table(model_layers(model, shape, ChannelGraph(model, shape)), target, existing=existing,
                        checks=2 if existing is None else 0)
    table_s = time.perf_counter() - t0
    table.save(table_path)
    source = LatencySource(table, target, runs=args.calibration_runs, warmup=args.warmup)
    align = target.align
    t0 = time.perf_counter()
    by_latency = prune_one_shot(model, spec, shape, "l1", Budget.parse(f"latency={args.latency:g}"), align,
                                latency=source)
    prune_s = time.perf_counter() - t0
    by_flops = {f: prune_one_shot(model, spec, shape, "l1", Budget.parse(f"flops={f:g}"), align) for f in args.flops}
    with tempfile.TemporaryDirectory() as tmp:
        paths = [export_for_timing(model, shape, Path(tmp) / "dense.onnx"),
                 export_for_timing(by_latency.model, shape, Path(tmp) / "latency.onnx")]
        paths += [export_for_timing(r.model, shape, Path(tmp) / f"flops{f:g}.onnx") for f, r in by_flops.items()]
        ms = time_models(paths, target, args.runs, args.warmup)
    dense_ms, lat_ms = ms[0], ms[1]
    lat = by_latency.report["latency"]
    measured_ratio = lat_ms / dense_ms
    flops_points = [(r.report["flops_ratio"], m / dense_ms) for r, m in zip(by_flops.values(), ms[2:])]
    same_latency_flops = interpolate_flops(flops_points, measured_ratio)
    s = summary(table)
    return {
        "model": spec, "target": target.name, "align": align, "latency_request": args.latency,
        "table": {"path": str(table_path), "build_s": round(table_s, 1), "operators": s["operators"],
                  "points": s["points"], "check_error_median": s["check_error_median"],
                  "check_error_max": s["check_error_max"]},
        "calibration": lat["calibration"], "prune_s": round(prune_s, 1),
        "dense_ms": dense_ms, "latency_model": {
            "measured_ms": lat_ms, "measured_ratio": measured_ratio, "predicted_ms": lat["predicted_ms"],
            "predicted_ratio": lat["predicted_ratio"], "predicted_vs_measured": lat["predicted_ms"] / lat_ms - 1.0,
            "flops_ratio": by_latency.report["flops_ratio"], "widths": list(by_latency.plan.widths)},
        "flops_models": [{"flops_request": f, "flops_ratio": r.report["flops_ratio"], "measured_ms": m,
                          "measured_ratio": m / dense_ms} for (f, r), m in zip(by_flops.items(), ms[2:])],
        "flops_at_same_latency": same_latency_flops,
        "speedup_realized_over_requested": (dense_ms / lat_ms) / (1.0 / args.latency),
    }


def markdown(rows: list[dict], machine: dict) -> str:
    lines = [f"Machine: {machine.get('cpu')}, ISA {' '.join(machine.get('isa') or [])}, "
             f"{machine.get('usable_cores')} usable cores; l1 pruning, random weights, batch 1, 224x224.", "",
             "| model | target | latency-allocated: measured / dense | predicted vs measured | FLOPs kept | "
             "FLOPs-allocated at the same latency: FLOPs kept | flops=0.5: measured / dense | "
             "speedup realized / requested | table build |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lm = r["latency_model"]
        f05 = next((f for f in r["flops_models"] if f["flops_request"] == 0.5), None)
        same = r["flops_at_same_latency"]
        lines.append(
            f"| {r['model'].split(':')[-1]} | {r['target']} | {lm['measured_ratio']:.3f} "
            f"({lm['measured_ms']:.2f} / {r['dense_ms']:.2f} ms) | {100 * lm['predicted_vs_measured']:+.1f}% "
            f"({lm['predicted_ms']:.2f} ms) | {lm['flops_ratio']:.3f} | "
            f"{'n/a' if same is None else f'{same:.3f}'} | "
            f"{'n/a' if f05 is None else format(f05['measured_ratio'], '.3f')} | "
            f"{r['speedup_realized_over_requested']:.3f} | {r['table']['build_s']:.0f} s |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=MODELS)
    parser.add_argument("--targets", nargs="+", default=TARGETS)
    parser.add_argument("--latency", type=float, default=0.5)
    parser.add_argument("--flops", type=float, nargs="+", default=FLOPS)
    parser.add_argument("--runs", type=int, default=60)
    parser.add_argument("--calibration-runs", type=int, default=50)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--tables", default="runs/latency_tables")
    parser.add_argument("--json", default="benchmarks/results/latency_budget.json")
    args = parser.parse_args()

    from edgeprune.profile.machine import machine_info

    Path(args.tables).mkdir(parents=True, exist_ok=True)
    rows = []
    for spec in args.models:
        for target in args.targets:
            rows.append(run_one(spec, target, args))
            print(json.dumps(rows[-1]["latency_model"]), flush=True)
    machine = machine_info()
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps({"machine": machine, "rows": rows}, indent=2))
    print(markdown(rows, machine))


if __name__ == "__main__":
    main()
