"""Architecture coverage: one-shot l1 pruning at flops=0.5 on timm models (random init).

    .venv/bin/python benchmarks/timm_coverage.py [--models a,b] [--align 1] [--onnx]
        [--out benchmarks/results/timm_coverage.md]

Every model runs in its own process with a hard time limit, so that a hang shows up as a row
rather than stalling the sweep. Norm layers are randomised first (timm zero-initialises the
last BatchNorm of residual blocks, which would make masked-vs-slim parity vacuous).
Nothing is downloaded: ``timm.create_model(name, pretrained=False)``.

Columns: groups (prunable / all), the FLOPs ratio the slim model reaches (cost model, checked
against MACs measured on the slim model), masked-vs-slim parity (max relative difference;
prune_one_shot raises ParityError above 1e-4; exactly 0 is common on one thread, where a zeroed
channel adds an exact 0.0), how far the slim model's output moved from the dense one (relative;
shows that parity was not vacuous), wall time of the prune, and the result:
ok, or the edgeprune error (the first reason a group was kept whole follows a BudgetError).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

# (source:name, input size); sizes are the smallest that keep the sweep quick on 2 CPUs
MODELS = [
    # the user report: failed with tracebacks, unnamed errors or a hang
    ("timm:ghostnet_100", 64),
    ("timm:cspresnet50", 64),
    ("timm:mixnet_s", 64),
    ("timm:mobilevitv2_050", 64),
    ("timm:dpn68", 64),
    ("timm:rexnet_100", 64),
    ("torchvision:shufflenet_v2_x1_0", 64),
    # models that already pruned (regression cover) and a few more shapes of graph
    ("timm:resnet18d", 64),
    ("timm:resnet50d", 64),
    ("timm:efficientnet_b0", 64),
    ("timm:mobilenetv3_small_100", 64),
    ("timm:mobilenetv2_100", 64),
    ("timm:mnasnet_100", 64),
    ("timm:lcnet_050", 64),
    ("timm:tinynet_e", 64),
    ("timm:regnetx_002", 64),
    ("timm:densenet121", 64),
    ("timm:vgg11_bn", 224),  # its 7x7 pre-logits conv: torch.onnx cannot export the adaptive pool at 64
    ("timm:dla34", 64),
    ("timm:res2net50_14w_8s", 64),
    ("timm:convnext_atto", 64),
    # more shapes of graph: Ghost v2, radix/split attention, weight-standardised convs, ViTs
    ("timm:ghostnetv2_100", 64),
    ("timm:resnest14d", 64),
    ("timm:nf_resnet26", 64),
    ("timm:vit_tiny_patch16_224", 224),
    ("timm:coat_lite_tiny", 224),
]
KEY = """\
Random init, norm layers and layer scales randomised, one torch thread. *groups*: prunable /
all channel groups (a group is kept whole when its channels reach the output, or pass an op
that cannot follow a narrower tensor; the BudgetError rows say which op and module).
*FLOPs ratio*: slim / dense MACs (cost model; equal to the MACs measured on the slim model).
*parity*: masked dense vs slim model, max relative difference (exactly 0 is common on one
thread: a zeroed channel adds an exact 0.0). *dense vs slim*: how far pruning moved the output
(relative), so parity is not vacuous. *time*: the prune (graph, scores, allocation, slim,
parity), without model creation. *ONNX*: the slim model exported (opset 17) and run in
onnxruntime, max relative difference to torch.\
"""
TIME_LIMIT_S = 300  # per model, the whole prune (edgeprune's own graph limit is 60 s)


def randomize_norms(model, seed: int = 0):
    """Random statistics and affine parameters for every BatchNorm, GroupNorm and LayerNorm,
    and layer-scale vectors (ConvNeXt's gamma starts at 1e-6, which hides its blocks)."""
    import torch
    from torch import nn

    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.running_mean is not None:
                n = m.num_features
                m.running_mean.copy_(torch.randn(n, generator=g) * 0.1)
                m.running_var.copy_(torch.rand(n, generator=g) + 0.5)
            if isinstance(m, (nn.modules.batchnorm._BatchNorm, nn.GroupNorm, nn.LayerNorm)):
                if getattr(m, "weight", None) is not None:
                    m.weight.copy_(torch.rand(m.weight.shape, generator=g) + 0.5)
                if getattr(m, "bias", None) is not None:
                    m.bias.copy_(torch.randn(m.bias.shape, generator=g) * 0.1)
        for name, p in model.named_parameters():
            if name.rsplit(".", 1)[-1] in ("gamma", "layer_scale") or ".ls" in name:
                p.copy_(torch.rand(p.shape, generator=g) + 0.5)
    return model


def build(spec: str, num_classes: int = 10):
    source, name = spec.split(":", 1)
    if source == "timm":
        import timm

        return timm.create_model(name, pretrained=False, num_classes=num_classes)
    import torchvision

    return torchvision.models.get_model(name, weights=None, num_classes=num_classes)


def run_one(spec: str, size: int, align: int, onnx: bool) -> dict:
    import torch

    from edgeprune.errors import BudgetError, EdgepruneError
    from edgeprune.pruning.budget import Budget
    from edgeprune.pruning.graph import ChannelGraph, count_flops_params
    from edgeprune.pruning.one_shot import prune_one_shot

    torch.manual_seed(0)
    torch.set_num_threads(1)
    model = randomize_norms(build(spec).eval())
    shape = (1, 3, size, size)
    row = {"model": spec, "input": f"{size}x{size}"}
    start = time.perf_counter()
    try:
        graph = ChannelGraph(model, shape)
        row["groups"] = f"{len(graph.prunable)} / {len(graph.groups)}"
        result = prune_one_shot(model, spec, shape, "l1", Budget.parse("flops=0.5"), align)
    except EdgepruneError as err:
        row["time_s"] = round(time.perf_counter() - start, 1)
        row["result"] = f"{type(err).__name__}: {err}"
        if isinstance(err, BudgetError) and "graph" in locals() and graph.notes:
            first = next((n for n in graph.notes if " in module " in n), graph.notes[0])  # one that names an op
            row["result"] += f" [{len(graph.notes)} groups kept whole, e.g. {first}]"
        return row
    except Exception as err:  # noqa: BLE001 - exactly what this sweep exists to find
        row["time_s"] = round(time.perf_counter() - start, 1)
        row["result"] = f"UNEXPECTED {type(err).__name__}: {err}"
        return row
    row["time_s"] = round(time.perf_counter() - start, 1)
    macs, _ = count_flops_params(result.model, shape)
    row["flops_ratio"] = result.report["flops_ratio"]
    row["measured_ratio"] = macs / result.report["flops_dense"]
    row["parity"] = result.report["parity_rel_diff"]
    from edgeprune.pruning.parity import compare_outputs, fixed_input

    row["changed"] = compare_outputs(model, result.model, fixed_input(shape, seed=1)).rel_diff  # not vacuous
    row["result"] = "ok"
    if onnx:
        row["onnx"] = _check_onnx(result.model, shape)
    return row


def _check_onnx(model, shape) -> str:
    import tempfile

    import numpy as np
    import torch

    from edgeprune.errors import EdgepruneError
    from edgeprune.export.onnx import export_onnx

    try:
        import onnxruntime as ort
    except ImportError:
        return "onnxruntime missing"
    x = torch.randn(*shape, generator=torch.Generator().manual_seed(2))
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.onnx"
        try:
            export_onnx(model, x, path, opset=17)
        except EdgepruneError as err:
            return f"{type(err).__name__}: {err}"
        got = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"input": x.numpy()})[0]
    with torch.no_grad():
        want = model(x).numpy()
    rel = float(np.abs(got - want).max() / max(np.abs(want).max(), 1e-12))
    return f"ok ({rel:.0e})" if rel < 1e-3 else f"differs ({rel:.1e})"


def table(rows: list[dict], onnx: bool) -> str:
    head = "| model | input | groups (prunable / all) | FLOPs ratio | parity (rel) | dense vs slim (rel) | time | " + ("ONNX | " if onnx else "") + "result |"
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in rows:
        ratio = f"{r['flops_ratio']:.4f}" if "flops_ratio" in r else "-"
        if "measured_ratio" in r and abs(r["measured_ratio"] - r["flops_ratio"]) > 1e-6:
            ratio += f" (measured {r['measured_ratio']:.4f})"
        parity = f"{r['parity']:.1e}" if "parity" in r else "-"
        result = r["result"].replace("|", "\\|").replace("\n", " ")
        changed = f"{r['changed']:.2f}" if "changed" in r else "-"
        cells = [r["model"], r.get("input", "-"), r.get("groups", "-"), ratio, parity, changed, f"{r.get('time_s', '-')} s"]
        if onnx:
            cells.append(r.get("onnx", "-"))
        lines.append("| " + " | ".join(cells + [result]) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", help="comma-separated source:name (default: the built-in list)")
    parser.add_argument("--size", type=int, default=64, help="input size for --models")
    parser.add_argument("--align", type=int, default=1)
    parser.add_argument("--onnx", action="store_true", help="also export the slim model and compare onnxruntime")
    parser.add_argument("--out", type=Path, help="write the table (markdown) here")
    parser.add_argument("--one", help=argparse.SUPPRESS)  # child process: one model, JSON on stdout
    args = parser.parse_args()
    if args.one:
        print("@@" + json.dumps(run_one(args.one, args.size, args.align, args.onnx)))
        return
    models = [(m.strip(), args.size) for m in args.models.split(",")] if args.models else MODELS
    rows = []
    for spec, size in models:
        cmd = [sys.executable, __file__, "--one", spec, "--size", str(size), "--align", str(args.align)]
        cmd += ["--onnx"] if args.onnx else []
        start = time.perf_counter()
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=TIME_LIMIT_S, check=False)
            line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("@@")), None)
            row = json.loads(line[2:]) if line else {
                "model": spec, "time_s": round(time.perf_counter() - start, 1),
                "result": "CRASHED: " + (proc.stderr.strip().splitlines() or ["no output"])[-1],
            }
        except subprocess.TimeoutExpired:
            row = {"model": spec, "time_s": TIME_LIMIT_S, "result": f"HANG: no result within {TIME_LIMIT_S} s"}
        rows.append(row)
        print(f"{spec}: {row['result'][:160]} ({row.get('time_s')} s)", file=sys.stderr, flush=True)
    text = table(rows, args.onnx)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(
            "# Architecture coverage: one-shot l1, flops=0.5, align "
            f"{args.align}, random init\n\n    .venv/bin/python benchmarks/timm_coverage.py"
            + (" --onnx" if args.onnx else "") + f" --out {args.out}\n\n" + KEY + "\n\n" + text + "\n",
            encoding="utf-8",
        )


if __name__ == "__main__":
    main()
