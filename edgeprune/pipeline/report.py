"""OUT/report.json (everything, machine-readable) and OUT/report.md (the tables a person
reads), plus OUT/report.png (accuracy vs latency) when matplotlib is installed."""

from __future__ import annotations

import datetime as _dt
from pathlib import Path
from typing import Any

from edgeprune import __version__
from edgeprune.files.atomic import atomic_write, write_json

SCHEMA = "edgeprune.pipeline.report/1"
VARIANTS = ("dense", "pruned", "pruned-int8")


def _size(folder: Path, names: dict[str, int], fmt: str) -> int | None:
    """Bytes on disk of one artifact: model.onnx, or model.xml + model.bin."""
    if fmt == "onnx":
        return names.get("model.onnx")
    if "model.xml" in names:
        return names["model.xml"] + names.get("model.bin", 0)
    return None


def build_report(ctx, records: dict[str, Any], statuses: dict[str, Any]) -> dict[str, Any]:
    cfg = ctx.config
    res = ctx.results
    exp, quant, prune, dense = res["export"], res["quantize"], res["prune"], res["dense"]
    acc = res.get("evaluate", {})
    prof = res.get("profile", {})
    variants: dict[str, Any] = {}
    for variant in VARIANTS:
        if variant == "pruned-int8":
            if not quant.get("enabled"):
                continue
            files = quant["files"]
            flops, params = exp["pruned"]["flops"], exp["pruned"]["params"]
        else:
            files = exp[variant]["files"]
            flops, params = exp[variant]["flops"], exp[variant]["params"]
        torch_acc = dense.get("accuracy") if variant == "dense" else prune.get("accuracy") if variant == "pruned" else None
        v: dict[str, Any] = {
            "model_name": ctx.model_name(variant),
            "flops": flops, "params": params,
            "flops_ratio": flops / exp["dense"]["flops"], "params_ratio": params / exp["dense"]["params"],
            "size_bytes": {fmt: _size(ctx.out, files, fmt) for fmt in ("onnx", "openvino")
                           if _size(ctx.out, files, fmt) is not None},
            "accuracy": {"torch": torch_acc, **{rt: a["accuracy"] for rt, a in acc.get(variant, {}).items()}}
            if torch_acc is not None or variant in acc else {},
            "latency": {},
        }
        if variant == "pruned-int8":
            v["quantization"] = {k: quant.get(k) for k in ("method", "weight_bits", "act_bits", "real_int8",
                                                          "reduce_range", "sqnr_db", "top1_agreement", "warnings")}
        for target, per in prof.items():
            p = per.get(variant)
            if not p or "median_ms" not in p:
                continue
            base = per.get("dense", {}).get("median_ms")
            # The profile stage times a target's variants interleaved and gives the speedup
            # (ratio of those medians) and its paired-bootstrap CI; older results only medians.
            speedup = p.get("speedup_vs_dense", (base / p["median_ms"]) if base else None)
            v["latency"][target] = {
                "runtime": p["runtime"], "precision": p["precision"], "threads": p["threads"],
                "median_ms": p["median_ms"], "p90_ms": p["p90_ms"], "median_ci95": p["median_ci95"],
                "runs": p["runs"], "speedup_vs_dense": speedup, "speedup_ci95": p.get("speedup_ci95"),
                "interleaved_with": p.get("interleaved_with"), "report": p["report"],
            }
        variants[variant] = v
    check = res.get("check", {"passed": True, "checks": []})
    stages = []
    for name, st in statuses.items():
        rec = records.get(name, {})
        stages.append({"stage": name, "status": st["status"], "elapsed_s": st["elapsed_s"],
                       "built_elapsed_s": rec.get("elapsed_s", st["elapsed_s"])})
    from edgeprune.profile.machine import machine_info

    return {
        "schema": SCHEMA,
        "edgeprune_version": __version__,
        "name": cfg.name,
        "description": cfg[""].get("description", ""),
        "config": {"path": str(cfg.path), "sha256": cfg.text_sha256},
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "machine": machine_info(),
        "model": {"spec": cfg["model"]["spec"], "name": cfg["model"]["name"], "input_shape": dense["input_shape"],
                  "dense_source": dense["source"]},
        "data": None if cfg["data"] is None else {
            "name": cfg["data"]["name"], "train_subset": cfg["data"].get("train_subset"),
            "test_subset": cfg["data"].get("test_subset"), "test_samples": dense.get("test_samples")},
        "pruning": {"method": prune["method"], "options": prune.get("method_options", {}), "budget": prune["budget"],
                    "align": prune["align"], "widths": prune["widths"], "flops_ratio": prune["flops_ratio"],
                    "params_ratio": prune["params_ratio"]},
        "targets": list(cfg.resolved["targets"]),
        "variants": variants,
        "checks": check["checks"],
        "passed": check["passed"],
        "unreliable_policy": check.get("unreliable", "fail"),
        "stages": stages,
        "total_elapsed_s": round(sum(s["elapsed_s"] for s in stages), 3),
    }


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.2f}%"


def _mb(n: int | None) -> str:
    return "-" if n is None else f"{n / 1e6:.2f} MB"


def format_markdown(r: dict[str, Any]) -> str:
    m, p = r["model"], r["pruning"]
    lines = [f"# edgeprune pipeline: {r['name']}", ""]
    if r.get("description"):
        lines += [r["description"], ""]
    data = r["data"]
    lines += [
        f"- model: `{m['spec']}` input {'x'.join(map(str, m['input_shape']))}, dense weights: {m['dense_source']}",
        f"- pruning: {p['method']}{' ' + str(p['options']) if p['options'] else ''}, budget {p['budget']}, "
        f"align {p['align']}: FLOPs x{p['flops_ratio']:.3f}, params x{p['params_ratio']:.3f}",
        f"- data: {data['name']} ({data['test_samples']} test images)" if data else "- data: none (no accuracy)",
        f"- machine: {r['machine'].get('cpu')} ({r['machine'].get('usable_cores')} usable cores); "
        f"edgeprune {r['edgeprune_version']}; {r['created']}",
        "",
        "## Variants",
        "",
    ]
    runtimes = sorted({rt for v in r["variants"].values() for rt in v["accuracy"]}, key=lambda s: ({"torch": 0, "ort": 1}.get(s, 2), s))
    head = ["variant", *[f"top-1 {rt}" for rt in runtimes], "FLOPs (MACs)", "params", "ONNX size", "IR size"]
    rows = []
    for name, v in r["variants"].items():
        rows.append([name, *[_pct(v["accuracy"].get(rt)) for rt in runtimes],
                     f"{v['flops'] / 1e6:.2f}M (x{v['flops_ratio']:.3f})", f"{v['params'] / 1e6:.3f}M",
                     _mb(v["size_bytes"].get("onnx")), _mb(v["size_bytes"].get("openvino"))])
    lines += _table(head, rows)
    q = r["variants"].get("pruned-int8", {}).get("quantization")
    if q:
        lines += ["", f"pruned-int8: {q['method']} W{q['weight_bits']}A{q['act_bits']}, "
                  f"{'real int8' if q['real_int8'] else 'simulated'}"
                  + (", weights on 7-bit codes (reduce range: x86 int8 kernels without VNNI saturate)"
                     if q.get("reduce_range") else "")
                  + f"; logit SQNR vs fp32 {q['sqnr_db']} dB, top-1 agreement {_pct(q['top1_agreement'])}"]
        lines += [f"**warning**: {w}" for w in q.get("warnings") or []]
    lines += ["", "## Latency (batch 1)", ""]
    head = ["target", "runtime", "variant", "median ms", "median 95% CI", "p90 ms", "speedup vs dense",
            "speedup 95% CI", "FLOPs reduction"]
    rows = []
    interleaved = False
    for target in r["targets"]:
        for name, v in r["variants"].items():
            lat = v["latency"].get(target)
            if not lat:
                continue
            interleaved = interleaved or bool(lat.get("interleaved_with"))
            sp, sp_ci = lat["speedup_vs_dense"], lat.get("speedup_ci95")
            rows.append([target, f"{lat['runtime']} ({lat['precision']}, {lat['threads']}t)", name,
                         f"{lat['median_ms']:.3f}", _ci(lat.get("median_ci95"), 3), f"{lat['p90_ms']:.3f}",
                         "-" if sp is None else f"{sp:.2f}x", _ci(sp_ci, 2, "x"), f"{1 / v['flops_ratio']:.2f}x"])
    lines += _table(head, rows)
    if interleaved:
        lines += ["", ("The variants of each target were timed in one interleaved loop (each in turn, "
                       "the same random input for all in a round), so machine noise hits them alike; "
                       "speedups are ratios of those medians, their CIs a paired bootstrap over the rounds.")]
    lines += ["", "## Budget checks", ""]
    if r["checks"]:
        rows = []
        for c in r["checks"]:
            if c["kind"] == "latency":
                what = []
                if c.get("budget_ms") is not None:
                    what.append(f"median {c['median_ms']:.3f}{_ci(c.get('median_ci95'), 3, sep=' ')} <= {c['budget_ms']:.3f} ms")
                if c.get("ratio") is not None:
                    what.append(f"ratio {c['ratio']:.3f}{_ci(c.get('ratio_ci95'), 3, sep=' ')} <= {c['max_ratio']:.3f}")
                detail = "; ".join(what) or "; ".join(c["notes"])
                if c.get("remeasured"):
                    detail += f" (re-measured, {c['remeasured']['runs']} runs)"
            else:
                detail = f"top-1 drop {100 * c['drop']:.2f} pts <= {100 * c['max_drop']:.2f} pts"
            rows.append([c["kind"], c["target"], c["variant"], detail, c["verdict"]])
        lines += _table(["check", "target / runtime", "variant", "measured [95% CI]", "verdict"], rows)
        noted = [c for c in r["checks"] if c["kind"] == "latency" and (c["verdict"] == "unreliable" or c.get("remeasured"))]
        if noted:
            lines += [""]
            lines += [f"- note, {c['variant']} on {c['target']}: " + "; ".join(c["notes"]) for c in noted]
        lines += ["", _verdict_line(r)]
    else:
        lines += ["no budgets configured (targets without latency budgets, no [budgets] section)"]
    lines += ["", "## Stages", ""]
    rows = [[s["stage"], s["status"], f"{s['elapsed_s']:.1f}", f"{s['built_elapsed_s']:.1f}"] for s in r["stages"]]
    lines += _table(["stage", "this run", "seconds (this run)", "seconds (when built)"], rows)
    lines += ["", f"total this run: {r['total_elapsed_s']:.1f} s", ""]
    if r.get("plot"):
        lines += [f"![accuracy vs latency]({r['plot']})", ""]
    return "\n".join(lines)


def _ci(ci, digits: int, unit: str = "", sep: str | None = None) -> str:
    """``[lo, hi]``; without a CI "-", or "" when ``sep`` is given (then prefixed by ``sep``)."""
    if not ci:
        return "" if sep is not None else "-"
    return (sep or "") + f"[{ci[0]:.{digits}f}{unit}, {ci[1]:.{digits}f}{unit}]"


def _verdict_line(r: dict[str, Any]) -> str:
    unreliable = [c for c in r["checks"] if c["verdict"] == "unreliable"]
    hard = [c for c in r["checks"] if not c["passed"] and c["verdict"] != "unreliable"]
    if hard:
        return "**BUDGET CHECK FAILED**" + (f" ({len(unreliable)} more unreliable)" if unreliable else "")
    if unreliable and not r["passed"]:
        return (f"**BUDGET CHECK UNRELIABLE**: {len(unreliable)} verdict(s) within noise after re-measuring "
                "(the budget lies inside the 95% CI); this fails the run (`[budgets] unreliable = \"warn\"` "
                "only warns)")
    if unreliable:
        return (f"**all checks passed**, but {len(unreliable)} verdict(s) are unreliable (within noise; "
                "`[budgets] unreliable = \"warn\"`)")
    return "**all checks passed**"


def _table(head: list[str], rows: list[list[str]]) -> list[str]:
    out = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    out += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return out


def write_report(ctx, records, statuses) -> dict[str, Any]:
    report = build_report(ctx, records, statuses)
    out = ctx.out
    from edgeprune.pipeline.plot import pareto_plot

    png = out / "report.png"
    report["plot"] = "report.png" if pareto_plot(report, png) else None
    if report["plot"] is None:
        png.unlink(missing_ok=True)
    write_json(out / "report.json", report)
    text = format_markdown(report)
    atomic_write(out / "report.md", lambda tmp: Path(tmp).write_text(text))
    return report
