"""Latency budgets on the target: does ``--budget latency=0.5`` give a model that measures half
the dense latency, and how does it compare with FLOPs-allocated pruning at the same latency?

For each model and target:
  1. build (or extend) the model's latency table on the target (`edgeprune latency-table`);
  2. prune (l1) to ``latency=L`` (``--latency-align``, 1: the widths follow the table's measured
     staircase alone): the calibrated table predicts the pruned model's ms;
  3. prune (l1) to ``flops=F`` for several F (the FLOPs-allocated baseline, the target's align);
  4. export dense and every pruned model to ONNX (batch 1) and time them all interleaved
     (A B C ... A B C, same inputs) on the target's runtime and settings, in --repeats loops each
     with the models compiled afresh: each model's ratio to dense is the median of the loops'
     (one compiled instance of a model measured 3-4% from another in the same loop).
Reported: measured pruned / dense ratio of the latency-allocated model, its predicted ms vs
measured ms, and the FLOPs the FLOPs-allocated models keep at the same measured latency
(interpolated between the F values), plus the speedup realized vs requested, and how well the
calibrated latency model predicts the FLOPs-allocated models (widths it was not fitted on).

    .venv/bin/python benchmarks/latency_budget.py [--models ...] [--targets ...] [--precisions fp32 int8]
        [--latency 0.5] [--resume]

``--precisions int8`` builds int8 (QDQ) tables and times the quantized models (ONNX Runtime's
quantizer, random calibration inputs: int8 kernels run at the same speed whatever the ranges).
Weights are random (latency does not depend on them); tables are kept in --tables and reused
(a reused table's build time is the time to check it). Prints a markdown table and writes JSON
(--json) after every row; --resume keeps the rows already there.
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


def importance_kept(scores, widths) -> float:
    """The fraction of the l1 importance the widths keep (each group's top channels, scores
    normalised per group as the allocator does): what the allocator maximises."""
    import numpy as np

    from edgeprune.pruning.budget import _normalise

    kept = total = 0.0
    for s, w in zip(scores, widths):
        ranked = np.sort(_normalise(s))[::-1]
        kept += float(ranked[:w].sum())
        total += float(ranked.sum())
    return kept / total


def add_importance(row: dict) -> dict:
    """The importance kept by the row's models and, interpolated, by the FLOPs-allocated models
    at the latency-allocated model's measured latency (recomputed from the deterministic prunes)."""
    import torch

    from edgeprune.methods import get_method
    from edgeprune.models import build_model
    from edgeprune.pruning.budget import Budget, allocate
    from edgeprune.pruning.graph import ChannelGraph

    torch.manual_seed(0)
    model, shape = build_model(row["model"])
    graph = ChannelGraph(model, shape)
    scores = get_method("l1").scores(model, graph)
    row["latency_model"]["importance_kept"] = importance_kept(scores, row["latency_model"]["widths"])
    for f in row["flops_models"]:
        widths = allocate(graph.cost, scores, Budget.parse(f"flops={f['flops_request']:g}"), row["align_flops"])
        f["importance_kept"] = importance_kept(scores, widths)
    points = [(f["importance_kept"], f["measured_ratio"]) for f in row["flops_models"]]
    row["importance_at_same_latency"] = interpolate_flops(points, row["latency_model"]["measured_ratio"])
    return row


def add_held_out(row: dict) -> dict:
    """The latency model's predicted / measured ratio for each FLOPs-allocated model: widths the
    calibration never saw (the check that its marginal costs, not only its total, are right)."""
    import numpy as np
    import torch

    from edgeprune.latency.cost import Calibration, latency_cost
    from edgeprune.latency.layers import model_layers
    from edgeprune.latency.table import LatencyTable
    from edgeprune.methods import get_method
    from edgeprune.models import build_model
    from edgeprune.pruning.budget import Budget, allocate
    from edgeprune.pruning.graph import ChannelGraph

    torch.manual_seed(0)
    model, shape = build_model(row["model"])
    graph = ChannelGraph(model, shape)
    table = LatencyTable.load(row["table"]["path"])
    cost = latency_cost(graph.cost, model_layers(model, shape, graph, row["precision"]), table).calibrated(
        Calibration.from_json(row["calibration"]))
    scores = get_method("l1").scores(model, graph)
    errors = []
    for f in row["flops_models"]:
        widths = allocate(graph.cost, scores, Budget.parse(f"flops={f['flops_request']:g}"), row["align_flops"])
        f["predicted_ratio"] = cost.latency(widths) / cost.dense("latency")
        errors.append(f["predicted_ratio"] / f["measured_ratio"] - 1.0)
    row["held_out_error"] = {"mean": float(np.mean(errors)), "max_abs": float(np.max(np.abs(errors)))}
    return row


def run_one(spec: str, target_name: str, precision: str, args) -> dict:
    import torch

    from edgeprune.latency.calibrate import export_for_timing, time_ratios
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
    table_path = Path(args.tables) / f"{name}.{target.name}{'' if precision == 'fp32' else '.' + precision}.json"
    existing = LatencyTable.load(table_path) if table_path.is_file() else None
    t0 = time.perf_counter()
    table = build_table(model_layers(model, shape, ChannelGraph(model, shape), precision), target, existing=existing,
                        checks=2 if existing is None else 0, progress=args.progress)
    table_s = time.perf_counter() - t0
    table.save(table_path)
    source = LatencySource(table, target, runs=args.calibration_runs, warmup=args.warmup)
    align = target.align
    t0 = time.perf_counter()
    by_latency = prune_one_shot(model, spec, shape, "l1", Budget.parse(f"latency={args.latency:g}"),
                                args.latency_align, latency=source)
    prune_s = time.perf_counter() - t0
    by_flops = {f: prune_one_shot(model, spec, shape, "l1", Budget.parse(f"flops={f:g}"), align) for f in args.flops}
    with tempfile.TemporaryDirectory() as tmp:
        models = [("dense", model), ("latency", by_latency.model)] + [(f"flops{f:g}", r.model) for f, r in by_flops.items()]
        # int8: the quantized models, as they ship
        paths = [export_for_timing(m, shape, Path(tmp) / f"{label}.onnx", precision) for label, m in models]
        dense_ms, ratios = time_ratios(paths, target, args.runs, args.warmup, args.repeats)
    ms = [r * dense_ms for r in ratios]  # each the median of the loops' ratios, at the loops' median dense ms
    lat_ms = ms[1]
    lat = by_latency.report["latency"]
    measured_ratio = lat_ms / dense_ms
    flops_points = [(r.report["flops_ratio"], m / dense_ms) for r, m in zip(by_flops.values(), ms[2:])]
    same_latency_flops = interpolate_flops(flops_points, measured_ratio)
    s = summary(table)
    return {
        "model": spec, "target": target.name, "precision": precision, "align_flops": align,
        "align_latency": args.latency_align, "latency_request": args.latency,
        "block": table.block,
        "table": {"path": str(table_path), "build_s": round(table_s, 1), "operators": s["operators"],
                  "points": s["points"], "check_error_median": s["check_error_median"],
                  "check_error_max": s["check_error_max"]},
        "calibration": lat["calibration"], "prune_s": round(prune_s, 1),
        "dense_ms": dense_ms, "latency_model": {
            "measured_ms": lat_ms, "measured_ratio": measured_ratio, "predicted_ms": lat["predicted_ms"],
            "predicted_ratio": lat["predicted_ratio"], "predicted_vs_measured": lat["predicted_ms"] / lat_ms - 1.0,
            "flops_ratio": by_latency.report["flops_ratio"], "widths": list(by_latency.plan.widths),
            # the calibration point the allocator took for its measurement (the model's own refinement
            # step, or the FLOPs shape: `budget.measured_within`); absent: not timed while calibrating
            "measured_as": lat.get("measured_as")},
        "flops_models": [{"flops_request": f, "flops_ratio": r.report["flops_ratio"], "measured_ms": m,
                          "measured_ratio": m / dense_ms} for (f, r), m in zip(by_flops.items(), ms[2:])],
        "flops_at_same_latency": same_latency_flops,
        "speedup_realized_over_requested": (dense_ms / lat_ms) / (1.0 / args.latency),
    }


def markdown(rows: list[dict], machine: dict) -> str:
    lines = [f"Machine: {machine.get('cpu')}, ISA {' '.join(machine.get('isa') or [])}, "
             f"{machine.get('usable_cores')} usable cores; l1 pruning, random weights, batch 1, 224x224.", "",
             "| model | target | precision | latency-allocated: measured / dense | predicted / measured ratio | "
             "predicted vs measured ms (dense at calibration vs now) | FLOPs kept | "
             "FLOPs-allocated at the same latency: FLOPs kept | importance kept: latency- / FLOPs-allocated | "
             "flops=0.5: measured / dense | speedup realized / requested | FLOPs-allocated models: predicted / measured "
             "ratio error, mean (max) | table build (block) |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    def order(r):
        m, t = r["model"], r["target"]
        return (MODELS.index(m) if m in MODELS else 99, TARGETS.index(t) if t in TARGETS else 99,
                r.get("precision", "fp32") != "fp32")

    for r in sorted(rows, key=order):
        if "infeasible" in r:
            lines.append(f"| {r['model'].split(':')[-1]} | {r['target']} | {r['precision']} | not reachable: "
                         f"{r['infeasible']} ||||||||||")
            continue
        lm = r["latency_model"]
        f05 = next((f for f in r["flops_models"] if f["flops_request"] == 0.5), None)
        same = r["flops_at_same_latency"]
        e = r.get("held_out_error")
        held = "n/a" if e is None else f"{100 * e['mean']:+.1f}% ({100 * e['max_abs']:.1f}%)"
        lines.append(
            f"| {r['model'].split(':')[-1]} | {r['target']} | {r['precision']} | {lm['measured_ratio']:.3f} "
            f"({lm['measured_ms']:.2f} / {r['dense_ms']:.2f} ms) | {lm['predicted_ratio']:.3f} / {lm['measured_ratio']:.3f} "
            f"({100 * (lm['predicted_ratio'] / lm['measured_ratio'] - 1):+.1f}%) | {100 * lm['predicted_vs_measured']:+.1f}% "
            f"({lm['predicted_ms']:.2f} ms; dense {r['calibration']['points'][0]['measured_ms']:.2f} vs "
            f"{r['dense_ms']:.2f} ms) | {lm['flops_ratio']:.3f} | "
            f"{'n/a' if same is None else f'{same:.3f}'} | {lm['importance_kept']:.3f} / "
            f"{'n/a' if r['importance_at_same_latency'] is None else format(r['importance_at_same_latency'], '.3f')} | "
            f"{'n/a' if f05 is None else format(f05['measured_ratio'], '.3f')} | "
            f"{r['speedup_realized_over_requested']:.3f} | {held} | {r['table']['build_s']:.0f} s ({r['block']}) |")
    return "\n".join(lines)


def details(rows: list[dict]) -> str:
    """Per row: prune time, the refinement's measured points (measured / predicted ratio), which
    one the allocator took for its measurement, the layer fits by kind, and the FLOPs-allocated
    models (flops request, measured / dense, predicted / dense by the latency model)."""
    lines = ["Per row: prune time (calibration and refinement included); the refinement's timed allocations "
             "(`refine N`: the latency model's, `flops-shaped N`: the FLOPs shape) as measured / predicted "
             "ratio; the one the allocator took for its measurement (`measured as`; none: the model's "
             "allocation was not one of them); the layer fits by kind; the FLOPs-allocated models as "
             "(flops request, measured / dense, predicted / dense by the latency model):", ""]
    for r in rows:
        if "infeasible" in r:
            continue
        steps = ", ".join(f"{p['widths']} {p['measured_ratio']:.3f}/{p['predicted_ratio']:.3f}"
                          for p in r["calibration"]["points"] if "measured_ratio" in p)
        kinds: dict[str, int] = {}
        for fit in r["calibration"].get("layers", {}).values():
            kinds[fit["kind"]] = kinds.get(fit["kind"], 0) + 1
        lines.append(f"    {r['model']} {r['target']} {r['precision']} prune_s {r['prune_s']} measured as "
                     f"{r['latency_model'].get('measured_as')} steps [{steps}] fits {kinds}")
        lines.append("        " + str([(f["flops_request"], round(f["measured_ratio"], 3), round(f["predicted_ratio"], 3))
                                      for f in r["flops_models"] if "predicted_ratio" in f]))
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=MODELS)
    parser.add_argument("--targets", nargs="+", default=TARGETS)
    parser.add_argument("--precisions", nargs="+", default=["fp32"], choices=["fp32", "int8"])
    parser.add_argument("--progress", action="store_true")
    parser.add_argument("--latency", type=float, default=0.5)
    parser.add_argument("--latency-align", type=int, default=1,
                        help="--align of the latency-allocated model (1: the table's staircase alone decides); "
                             "the FLOPs-allocated ones use the target's")
    parser.add_argument("--flops", type=float, nargs="+", default=FLOPS)
    parser.add_argument("--runs", type=int, default=60)
    parser.add_argument("--calibration-runs", type=int, default=50)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=5,
                        help="timing loops, each with every model compiled afresh; the median ratio to dense")
    parser.add_argument("--tables", default="runs/latency_tables")
    parser.add_argument("--json", default="benchmarks/results/latency_budget.json")
    parser.add_argument("--resume", action="store_true", help="keep the rows already in --json")
    parser.add_argument("--report", action="store_true", help="print the tables of --json and run nothing")
    args = parser.parse_args()
    if args.report:
        data = json.loads(Path(args.json).read_text())
        print(markdown(data["rows"], data["machine"]) + "\n\n" + details(data["rows"]))
        return

    from edgeprune.errors import BudgetError
    from edgeprune.profile.machine import machine_info

    Path(args.tables).mkdir(parents=True, exist_ok=True)
    done = json.loads(Path(args.json).read_text())["rows"] if args.resume and Path(args.json).is_file() else []
    wanted = {(m, t, p) for m in args.models for t in args.targets for p in args.precisions}
    rows = [r for r in done if (r["model"], r["target"], r.get("precision", "fp32")) not in wanted]  # kept as they are
    for spec in args.models:
        for target in args.targets:
            for precision in args.precisions:
                old = [r for r in done if (r["model"], r["target"], r.get("precision", "fp32")) == (spec, target, precision)]
                try:
                    row = old[0] if old else run_one(spec, target, precision, args)
                except BudgetError as err:  # a budget the model cannot reach on this target: said, not hidden
                    row = {"model": spec, "target": target, "precision": precision, "infeasible": str(err)}
                if "infeasible" not in row and "importance_at_same_latency" not in row:
                    row = add_importance(row)
                if "infeasible" not in row and "held_out_error" not in row:
                    row = add_held_out(row)
                rows.append(row)
                print(spec, target, precision, json.dumps(row.get("latency_model") or row["infeasible"]), flush=True)
                Path(args.json).parent.mkdir(parents=True, exist_ok=True)
                Path(args.json).write_text(json.dumps({"machine": machine_info(), "rows": rows}, indent=2))
    print(markdown(rows, machine_info()) + "\n\n" + details(rows))


if __name__ == "__main__":
    main()
