"""One function per pipeline stage. Each gets the run context and its own folder
(OUT/<stage>/), writes its artifacts there, and returns a JSON-ready result (None when a
training stage stopped early, to be resumed). The runner decides what runs (runner.py)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from edgeprune.pipeline.config import PipelineConfig

VARIANT_DIRS = {"dense": "export/dense", "pruned": "export/pruned", "pruned-int8": "quantize"}


@dataclass
class Context:
    config: PipelineConfig
    out: Path
    resume: bool = False
    progress: bool = True
    stop_after: dict[str, int] = field(default_factory=dict)  # stage -> epoch (tests, resume demos)
    results: dict[str, Any] = field(default_factory=dict)  # stage name -> its result
    echo: Callable[[str], None] = print
    _data: Any = None

    def data(self, input_shape=None):
        """The [data] splits (opened once), or None without a [data] section."""
        cfg = self.config
        if cfg["data"] is None:
            return None
        if self._data is None:
            from edgeprune.data import open_data

            d = cfg["data"]
            self._data = open_data(
                cfg.resolved["data"], root=cfg.resolved.get("data_root"), input_shape=input_shape,
                train_subset=d.get("train_subset"), test_subset=d.get("test_subset"),
            )
        return self._data

    def shape(self) -> tuple[int, ...]:
        return tuple(self.results["dense"]["input_shape"])

    def model_name(self, variant: str) -> str:
        """The model name profile reports carry (what target budgets are keyed by): the pruned
        model is ``NAME``, the others ``NAME-dense`` / ``NAME-int8`` (as `make <target>` names them)."""
        base = self.config["model"]["name"]
        return {"dense": f"{base}-dense", "pruned": base, "pruned-int8": f"{base}-int8"}[variant]


def _input_shape(cfg: PipelineConfig):
    from edgeprune.models.spec import parse_input_shape

    return parse_input_shape(cfg["model"].get("input_shape"))


# ---- 1. dense: train, load weights, or random init ----------------------------------------


def stage_dense(ctx: Context, folder: Path) -> dict[str, Any] | None:
    import torch

    from edgeprune.files.atomic import save_torch
    from edgeprune.files.manifest import clear_manifest, write_manifest
    from edgeprune.models import build_model
    from edgeprune.pruning.folder import MODEL

    cfg = ctx.config
    model_cfg, train = cfg["model"], cfg["train"]
    seed = train["seed"] if train is not None else 0
    torch.manual_seed(seed)
    weights = cfg.resolved.get("weights")
    model, shape = build_model(model_cfg["spec"], _input_shape(cfg), weights)
    data = ctx.data(shape)
    result: dict[str, Any] = {"spec": model_cfg["spec"], "input_shape": list(shape)}
    if train is not None:
        from edgeprune.train import TrainConfig
        from edgeprune.train.jobs import train_dense

        config = TrainConfig(epochs=train["epochs"], lr=train["lr"], batch_size=train["batch_size"], seed=seed)
        metrics = train_dense(model, model_cfg["spec"], shape, data, config, folder, resume=ctx.resume,
                              stop_after=ctx.stop_after.get("dense"), progress=ctx.progress)
        if not metrics["complete"]:
            return None
        result.update(source="trained", epochs=train["epochs"], accuracy=metrics["accuracy"],
                      test_samples=len(data.test))
        return result
    clear_manifest(folder)
    save_torch(folder / MODEL, model.state_dict())
    result["source"] = "weights" if weights else f"random init (seed {seed})"
    if data is not None:
        from edgeprune.train.trainer import check_classes, evaluate

        check_classes(model, data, model_cfg["spec"])
        test = evaluate(model, data.test, cfg["data"]["eval_batch_size"])
        result.update(accuracy=test["accuracy"], test_samples=test["samples"])
    write_manifest(folder, "train", [MODEL], spec=model_cfg["spec"], input_shape=list(shape),
                   preprocess=_given_preprocess(cfg, shape, data), classes=list(data.train.classes) if data else None,
                   settings={"source": result["source"]})
    return result


def _given_preprocess(cfg: PipelineConfig, shape, data) -> dict[str, Any] | None:
    """What an untrained dense model expects: [model] mean/std, else the spec's default, else the data's."""
    from edgeprune.files.manifest import preprocess_record
    from edgeprune.pruning.job import spec_preprocess

    m = cfg["model"]
    if m.get("mean") is not None:
        return preprocess_record(m["mean"], m["std"], "config [model] mean/std")
    found = spec_preprocess(m["spec"], shape)
    if found is None and data is not None:
        return preprocess_record(data.train.norm.mean, data.train.norm.std, data.train.name)
    return found


# ---- 2. prune (+ fine-tune) + slim ---------------------------------------------------------


def stage_prune(ctx: Context, folder: Path) -> dict[str, Any] | None:
    from edgeprune.pipeline.config import pipeline_name
    from edgeprune.pruning.job import run_prune

    cfg = ctx.config
    request = cfg.prune_request(folder, input_shape=ctx.shape())
    result = run_prune(request, resume=ctx.resume, stop_after=ctx.stop_after.get("prune"), progress=ctx.progress,
                       names=pipeline_name)
    if result is None:
        return None
    r = result.report
    keys = ("method", "budget", "align", "flops_dense", "flops_pruned", "flops_ratio", "params_dense",
            "params_pruned", "params_ratio", "accuracy", "test_samples", "parity_rel_diff")
    return {k: r.get(k) for k in keys} | {"widths": list(result.plan.widths), "method_options": request.method_options}


# ---- 3. export dense and pruned -------------------------------------------------------------


def stage_export(ctx: Context, folder: Path) -> dict[str, Any]:
    from edgeprune.export import ExportOptions, export_model, load_source
    from edgeprune.export.exporter import check_dependencies

    e = ctx.config["export"]
    options = ExportOptions(formats=tuple(e["formats"]), opset=e["opset"], fp16=e["fp16"])
    check_dependencies(options)
    out: dict[str, Any] = {}
    for variant, stage in (("dense", "dense"), ("pruned", "prune")):
        source = load_source(str(ctx.out / stage))  # its manifest says what the model was fed
        metadata = dict(source.metadata) | {"edgeprune.variant": variant}
        ctx.echo(f"      exporting {variant} ...")
        res = export_model(source.model, source.input_shape, folder / variant, preprocess=source.resolve_preprocess(),
                           metadata=metadata, options=options, classes=source.classes)
        r = res.report
        out[variant] = {
            "files": {f["path"]: f["bytes"] for f in r["files"]},
            "flops": r["flops"], "params": r["params"],
            "parity": {k: v["rel_diff"] for k, v in r["parity"].items()},
        }
    return out


# ---- 4. quantize the pruned model ------------------------------------------------------------


def stage_quantize(ctx: Context, folder: Path) -> dict[str, Any]:
    cfg = ctx.config
    q = cfg["quantize"]
    if q is None or not q["enabled"]:
        return {"enabled": False}
    from edgeprune.quant import QuantizeConfig, quantize_onnx

    config = QuantizeConfig(
        method=q["method"], weight_bits=q["weight_bits"], act_bits=q["act_bits"], bias_correction=q["bias_correction"],
        openvino="openvino" in cfg["export"]["formats"] and q["act_bits"] == 8, reduce_range=q["reduce_range"],
    )
    res = quantize_onnx(ctx.out / "export" / "pruned" / "model.onnx", cfg.resolved["calib"], folder, config,
                        progress=ctx.progress)
    r = res.report
    ev = r.get("evaluation", {})
    return {
        "enabled": True, "method": q["method"], "weight_bits": q["weight_bits"], "act_bits": q["act_bits"],
        "real_int8": r.get("real_int8"), "files": {f["path"]: (folder / f["path"]).stat().st_size for f in r.get("files", [])},
        "sqnr_db": ev.get("sqnr_db"), "top1_agreement": ev.get("top1_agreement"),
        "reduce_range": r["reduce_range"]["enabled"], "warnings": r.get("warnings", []),
    }


# ---- 5. accuracy of each deployed artifact --------------------------------------------------


def variant_files(ctx: Context) -> dict[str, dict[str, Path]]:
    """variant -> {"onnx": path, "openvino": path} for the artifacts that exist."""
    found: dict[str, dict[str, Path]] = {}
    for variant, sub in VARIANT_DIRS.items():
        d = ctx.out / sub
        files = {k: d / n for k, n in (("onnx", "model.onnx"), ("openvino", "model.xml")) if (d / n).is_file()}
        if variant == "pruned-int8" and not ctx.results.get("quantize", {}).get("enabled"):
            continue
        if files:
            found[variant] = files
    return found


def stage_evaluate(ctx: Context, folder: Path) -> dict[str, Any]:
    from edgeprune.deployed_eval import evaluate_deployed
    from edgeprune.files.atomic import write_json

    data = ctx.data(ctx.shape())
    if data is None:
        return {"skipped": "no [data] section: no accuracy"}
    out: dict[str, Any] = {}
    for variant, files in variant_files(ctx).items():
        for fmt, path in files.items():
            ctx.echo(f"      {variant} {fmt} ...")
            r = evaluate_deployed(path, data.test, ctx.config["data"]["eval_batch_size"])
            out.setdefault(variant, {})[r["runtime"]] = {"accuracy": r["accuracy"], "samples": r["samples"],
                                                         "precision": r["precision"]}
    write_json(folder / "accuracy.json", out)
    return out


# ---- 6. latency of each artifact on each target ------------------------------------------------


def profile_path(ctx: Context, variant: str, target: str) -> Path:
    return ctx.out / "profile" / f"{variant}.{target}.json"


def stage_profile(ctx: Context, folder: Path) -> dict[str, Any]:
    from edgeprune.files.atomic import write_json
    from edgeprune.profile import ProfileConfig, profile_model
    from edgeprune.targets import load_target

    t = ctx.config["targets"]
    out: dict[str, Any] = {}
    for name in ctx.config.resolved["targets"]:
        target = load_target(name)
        config = ProfileConfig(
            runs=t["runs"] if t.get("runs") is not None else target.profile.runs,
            warmup=t["warmup"] if t.get("warmup") is not None else target.profile.warmup,
            batch=target.profile.batch,
        )
        fmt = "openvino" if target.runtime.name == "openvino" else "onnx"
        for variant, files in variant_files(ctx).items():
            if fmt not in files:
                out.setdefault(name, {})[variant] = {"skipped": f"no {fmt} artifact"}
                continue
            ctx.echo(f"      {variant} on {name} ({config.runs} runs) ...")
            report = profile_model(files[fmt], target.runtime.name, target.runtime.settings, config,
                                   target=target.name, name=ctx.model_name(variant))
            write_json(profile_path(ctx, variant, name), report)
            lat = report["latency_ms"]
            out.setdefault(name, {})[variant] = {
                "runtime": report["runtime"], "precision": report["precision"], "threads": report["threads"],
                "median_ms": lat["median"], "p90_ms": lat["p90"], "median_ci95": lat["median_ci95"],
                "runs": report["runs"], "report": str(profile_path(ctx, variant, name).relative_to(ctx.out)),
            }
    return out


# ---- 7. budgets ----------------------------------------------------------------------------------


def stage_check(ctx: Context, folder: Path) -> dict[str, Any]:
    import dataclasses

    from edgeprune.budget_check import check_budgets
    from edgeprune.errors import EdgepruneError
    from edgeprune.files.atomic import write_json
    from edgeprune.targets import Budgets, load_target

    cfg = ctx.config
    b = cfg["budgets"] or {"max_ratio": None, "latency_ms": {}, "max_accuracy_drop": None}
    checks: list[dict[str, Any]] = []
    for name in cfg.resolved["targets"]:
        target = load_target(name)
        latency = dict(target.budgets.latency_ms)
        latency.update({ctx.model_name(v): float(ms) for v, ms in b["latency_ms"].items()})
        max_ratio = b["max_ratio"] if b.get("max_ratio") is not None else target.budgets.max_ratio
        merged = dataclasses.replace(target, budgets=Budgets(latency_ms=latency, max_ratio=max_ratio))
        reports = {}
        for variant in ("dense", "pruned", "pruned-int8"):
            path = profile_path(ctx, variant, name)
            if path.is_file():
                reports[variant] = (str(path), json.loads(path.read_text()))
        base = reports.get("dense") if max_ratio is not None else None
        for variant, item in reports.items():
            if variant == "dense" and ctx.model_name("dense") not in latency:
                continue
            notes = []
            if variant == "pruned-int8" and base is not None and item[1].get("precision") != base[1].get("precision"):
                # The question is what int8 buys over the fp32 dense model, so the ratio compares
                # across precisions on purpose (everything else must still match).
                notes.append(f"precision {item[1].get('precision')} compared with the dense model's "
                             f"{base[1].get('precision')}")
                item = (item[0], {**item[1], "precision": base[1].get("precision")})
            try:
                (v,) = check_budgets([item], merged, None if variant == "dense" else base)
                checks.append({"kind": "latency", "target": name, "variant": variant, "verdict": v.status,
                               "passed": not v.failed, "median_ms": v.median_ms, "budget_ms": v.budget_ms,
                               "ratio": v.ratio, "max_ratio": v.max_ratio, "notes": notes + list(v.notes)})
            except EdgepruneError as e:
                checks.append({"kind": "latency", "target": name, "variant": variant, "verdict": "error",
                               "passed": False, "notes": [str(e)]})
    drop = b.get("max_accuracy_drop")
    acc = ctx.results.get("evaluate", {})
    if drop is not None and "dense" in acc:
        for variant in ("pruned", "pruned-int8"):
            for runtime, r in acc.get(variant, {}).items():
                ref = acc["dense"].get(runtime) or next(iter(acc["dense"].values()))
                d = ref["accuracy"] - r["accuracy"]
                checks.append({"kind": "accuracy", "target": runtime, "variant": variant,
                               "verdict": "pass" if d <= drop else "FAIL", "passed": d <= drop,
                               "accuracy": r["accuracy"], "dense_accuracy": ref["accuracy"],
                               "drop": round(d, 6), "max_drop": drop, "notes": []})
    result = {"passed": all(c["passed"] for c in checks), "checks": checks}
    write_json(folder / "check.json", result)
    return result
