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
    building: dict[str, Path] = field(default_factory=dict)  # stage -> the folder it is being built in
    _data: Any = None

    def stage_dir(self, stage: str) -> Path:
        """Where ``stage``'s files are now: its build folder while it runs, else ``OUT/STAGE``."""
        return self.building.get(stage, self.out / stage)

    def relative(self, path: Path) -> str:
        """``path`` relative to ``out`` as it will be once its stage is published."""
        path = Path(path)
        for stage, folder in self.building.items():
            try:
                return str(Path(stage) / path.relative_to(folder))
            except ValueError:
                continue
        return str(path.relative_to(self.out))

    def data(self, input_shape=None, feed=None):
        """The [data] splits (opened once; ``feed``: the Preprocess the model is fed, else the
        data's own statistics), or None without a [data] section."""
        cfg = self.config
        if cfg["data"] is None:
            return None
        if self._data is None:
            from edgeprune.data import Normalization, open_data

            d = cfg["data"]
            self._data = open_data(
                cfg.resolved["data"], root=cfg.resolved.get("data_root"), input_shape=input_shape,
                train_subset=d.get("train_subset"), test_subset=d.get("test_subset"), augment=d.get("augment"),
                normalization=Normalization(feed.mean, feed.std, feed.name) if feed is not None else None,
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
    from edgeprune.models.preprocess import decide_feed
    from edgeprune.pruning.job import weights_manifest

    source = weights_manifest(weights)
    feed = decide_feed(model_cfg["spec"], shape, mean=model_cfg.get("mean"), std=model_cfg.get("std"),
                       weights_record=source.preprocess if source else None, from_weights=weights is not None)
    data = ctx.data(shape, feed)
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
                   preprocess=_untrained_preprocess(feed, model_cfg["spec"], shape, data), classes=list(data.train.classes) if data else None,
                   settings={"source": result["source"]})
    return result


def _untrained_preprocess(feed, spec: str, shape, data) -> dict[str, Any] | None:
    """What a dense model that is not trained here expects: what `decide_feed` found
    ([model] mean/std, its weights' folder, its spec), else the spec's default, else the data's."""
    from edgeprune.files.manifest import preprocess_record
    from edgeprune.pruning.job import spec_preprocess

    if feed is not None:
        return preprocess_record(feed.mean, feed.std, feed.name)
    found = spec_preprocess(spec, shape)
    if found is None and data is not None:
        return preprocess_record(data.train.norm.mean, data.train.norm.std, f"statistics of {data.train.name}")
    return found


# ---- 2. prune (+ fine-tune) + slim ---------------------------------------------------------


def stage_prune(ctx: Context, folder: Path) -> dict[str, Any] | None:
    from edgeprune.pipeline.config import pipeline_name
    from edgeprune.pruning.job import run_prune

    cfg = ctx.config
    scratch = cfg["prune"].get("scratch")
    if scratch is None:
        request = cfg.prune_request(folder, input_shape=ctx.shape())
        result = run_prune(request, resume=ctx.resume, stop_after=ctx.stop_after.get("prune"), progress=ctx.progress,
                           names=pipeline_name)
    else:  # the method makes the plan (in plan_source/), then Scratch-E/B trains its architecture afresh
        source = folder / SCRATCH_SOURCE
        request = cfg.prune_request(source, input_shape=ctx.shape(), dense=ctx.stage_dir("dense"))
        if run_prune(request, resume=ctx.resume, progress=ctx.progress, names=pipeline_name) is None:
            return None
        ctx.echo(f"  {request.method} plan in {ctx.relative(source)}; Scratch-{scratch.strip().upper()} trains "
                 "its architecture from random initialisation")
        result = run_prune(cfg.scratch_request(folder, source, input_shape=ctx.shape()), resume=ctx.resume,
                           stop_after=ctx.stop_after.get("prune"), progress=ctx.progress, names=pipeline_name)
    if result is None:
        return None
    r = result.report
    keys = ("method", "budget", "align", "flops_dense", "flops_pruned", "flops_ratio", "params_dense",
            "params_pruned", "params_ratio", "accuracy", "test_samples", "parity_rel_diff", "removed_blocks")
    out = {k: r.get(k) for k in keys} | {"widths": list(result.plan.widths), "method_options": request.method_options}
    if "scratch" in r:
        out["scratch"] = {k: r["scratch"][k] for k in ("mode", "plan_method", "dense_epochs", "epochs", "formula")}
    return out


SCRATCH_SOURCE = "plan_source"  # inside the prune stage: the method's prune folder whose plan Scratch-E/B trains


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
    from edgeprune.pipeline.runner import first_target_file
    from edgeprune.quant import QuantizeConfig, quantize_onnx

    config = QuantizeConfig(
        method=q["method"], weight_bits=q["weight_bits"], act_bits=q["act_bits"], bias_correction=q["bias_correction"],
        openvino="openvino" in cfg["export"]["formats"] and q["act_bits"] == 8, reduce_range=q["reduce_range"],
        target=first_target_file(cfg),  # reduce range as the device needs it
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

REMEASURE_FACTOR = 3  # a verdict within noise is re-measured once, with this many times the runs


def profile_path(ctx: Context, variant: str, target: str) -> Path:
    return ctx.stage_dir("profile") / f"{variant}.{target}.json"


def remeasured_path(ctx: Context, variant: str, target: str) -> Path:
    """Where the check stage keeps a re-measurement: its own folder, so the profile stage's
    reports stay as that stage built them (and hashed them)."""
    return ctx.stage_dir("check") / "remeasured" / f"{variant}.{target}.json"


def _profile_config(ctx: Context, target, factor: int = 1):
    """The target's profile settings, [targets] runs/warmup overriding; ``factor`` x the runs."""
    from edgeprune.profile import ProfileConfig

    t = ctx.config["targets"]
    runs = t["runs"] if t.get("runs") is not None else target.profile.runs
    return ProfileConfig(
        runs=runs * factor,
        warmup=t["warmup"] if t.get("warmup") is not None else target.profile.warmup,
        batch=target.profile.batch,
    )


def profile_target(ctx: Context, target, config, path_of: Callable[[str], Path]) -> dict[str, Any]:
    """Time every variant with an artifact in ``target``'s format in one interleaved loop
    (dense pruned pruned-int8, dense pruned pruned-int8, ..., the same fresh random input for
    all three in a round), write one profile report per variant to ``path_of(variant)``, and
    return variant -> summary. Speedups vs dense are ratios of these interleaved medians, with
    a paired-bootstrap 95% CI over the rounds."""
    from edgeprune.files.atomic import write_json
    from edgeprune.profile.compare import profile_models_interleaved
    from edgeprune.profile.stats import bootstrap_median_ratio_ci

    fmt = "openvino" if target.runtime.name == "openvino" else "onnx"
    found = variant_files(ctx)
    timed = [v for v, files in found.items() if fmt in files]
    out: dict[str, Any] = {v: {"skipped": f"no {fmt} artifact"} for v in found if v not in timed}
    if not timed:
        return out
    ctx.echo(f"      {', '.join(timed)} on {target.name} (interleaved, {config.runs} runs each) ...")
    reports = profile_models_interleaved(
        [found[v][fmt] for v in timed], target.runtime.name, target.runtime.settings, config,
        names=[ctx.model_name(v) for v in timed], labels=timed, target=target.name,
    )
    dense = reports[timed.index("dense")] if "dense" in timed else None
    for variant, report in zip(timed, reports):
        path = path_of(variant)
        write_json(path, report)
        lat = report["latency_ms"]
        entry: dict[str, Any] = {
            "runtime": report["runtime"], "precision": report["precision"], "threads": report["threads"],
            "median_ms": lat["median"], "p90_ms": lat["p90"], "median_ci95": lat["median_ci95"],
            "runs": report["runs"], "report": ctx.relative(path),
            "interleaved_with": [v for v in timed if v != variant],
        }
        if dense is not None:
            entry["speedup_vs_dense"] = dense["latency_ms"]["median"] / lat["median"]
            entry["speedup_ci95"] = None if report is dense else list(
                bootstrap_median_ratio_ci(dense["samples_ms"], report["samples_ms"], paired=True))
        out[variant] = entry
    return {v: out[v] for v in found if v in out}


def stage_profile(ctx: Context, folder: Path) -> dict[str, Any]:
    from edgeprune.targets import load_target

    out: dict[str, Any] = {}
    for name in ctx.config.resolved["targets"]:
        target = load_target(name)
        per = profile_target(ctx, target, _profile_config(ctx, target), lambda v, name=name: profile_path(ctx, v, name))
        if per:
            out[name] = per
    return out


# ---- 7. budgets ----------------------------------------------------------------------------------


def _read_reports(path_of: Callable[[str], Path]) -> dict[str, tuple[str, dict[str, Any]]]:
    reports = {}
    for variant in ("dense", "pruned", "pruned-int8"):
        path = path_of(variant)
        if path.is_file():
            reports[variant] = (str(path), json.loads(path.read_text()))
    return reports


def _merged_target(ctx: Context, target, b: dict[str, Any]):
    """``target`` with the config's [budgets] laid over its own budgets."""
    import dataclasses

    from edgeprune.targets import Budgets

    latency = dict(target.budgets.latency_ms)
    latency.update({ctx.model_name(v): float(ms) for v, ms in b["latency_ms"].items()})
    max_ratio = b["max_ratio"] if b.get("max_ratio") is not None else target.budgets.max_ratio
    return dataclasses.replace(target, budgets=Budgets(latency_ms=latency, max_ratio=max_ratio))


def _judge(ctx: Context, name: str, merged, reports: dict[str, tuple[str, dict[str, Any]]]) -> list[dict[str, Any]]:
    """One CI-aware latency check per variant report of target ``name`` (``passed`` is set by the caller)."""
    from edgeprune.budget_check import check_budgets
    from edgeprune.errors import EdgepruneError

    latency, max_ratio = merged.budgets.latency_ms, merged.budgets.max_ratio
    base = reports.get("dense") if max_ratio is not None else None
    checks: list[dict[str, Any]] = []
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
            rel = ctx.relative(Path(item[0]))
        except ValueError:
            rel = item[0]
        try:
            (v,) = check_budgets([item], merged, None if variant == "dense" else base, ci_aware=True)
            checks.append({"kind": "latency", "target": name, "variant": variant, "verdict": v.status,
                           "passed": not v.failed, "median_ms": v.median_ms, "median_ci95": list(v.median_ci95),
                           "budget_ms": v.budget_ms, "ratio": v.ratio,
                           "ratio_ci95": list(v.ratio_ci95) if v.ratio_ci95 is not None else None,
                           "max_ratio": v.max_ratio, "runs": item[1].get("runs"), "report": rel,
                           "predicted_ms": v.predicted_ms, "notes": notes + list(v.notes)})
        except EdgepruneError as e:
            checks.append({"kind": "latency", "target": name, "variant": variant, "verdict": "error",
                           "passed": False, "notes": [str(e)]})
    return checks


def _ci_text(c: dict[str, Any]) -> str:
    """What a latency check measured, with its 95% CIs."""
    parts = []
    if c.get("budget_ms") is not None and c.get("median_ci95"):
        lo, hi = c["median_ci95"]
        parts.append(f"median {c['median_ms']:.3f} ms [95% CI {lo:.3f}, {hi:.3f}] vs budget {c['budget_ms']:.3f} ms")
    if c.get("ratio") is not None:
        ci = c.get("ratio_ci95")
        parts.append(f"ratio {c['ratio']:.3f}" + (f" [95% CI {ci[0]:.3f}, {ci[1]:.3f}]" if ci else "")
                     + f" vs max_ratio {c['max_ratio']:.3f}")
    return "; ".join(parts)


def unreliable_policy(b: dict[str, Any] | None) -> str:
    """``[budgets] unreliable``: "fail" (default: an unreliable verdict fails the run) or "warn"."""
    return "warn" if (b or {}).get("unreliable", "fail") == "warn" else "fail"


def check_passes(verdict: str, policy: str) -> bool:
    from edgeprune.budget_check import BASELINE, NO_BUDGET, PASS, UNRELIABLE

    return verdict in (PASS, NO_BUDGET, BASELINE) or (verdict == UNRELIABLE and policy == "warn")


def latency_checks(
    ctx: Context,
    name: str,
    merged,
    reports: dict[str, tuple[str, dict[str, Any]]],
    remeasure: Callable[[], dict[str, tuple[str, dict[str, Any]]]],
    policy: str,
) -> list[dict[str, Any]]:
    """The latency checks of target ``name``, CI-aware.

    A verdict whose budget lies inside the 95% CI (of the median, or of the ratio to dense)
    is neither pass nor fail. Then ``remeasure()`` is called once (all variants of the
    target, interleaved again, with more runs) and those verdicts are judged again on the
    new reports; verdicts that were clear stay as first measured. One still within noise
    is ``unreliable``: it fails the run unless ``policy`` is "warn".
    """
    from edgeprune.budget_check import UNRELIABLE

    checks = _judge(ctx, name, merged, reports)
    if any(c["verdict"] == UNRELIABLE for c in checks):
        again = {c["variant"]: c for c in _judge(ctx, name, merged, remeasure())}
        for i, c in enumerate(checks):
            if c["verdict"] != UNRELIABLE:
                continue
            c2 = again.get(c["variant"])
            if c2 is None:
                c2 = {**c, "verdict": "error", "notes": [f"{c['variant']} is missing from the re-measurement"]}
            first = {k: c.get(k) for k in ("median_ms", "median_ci95", "ratio", "ratio_ci95", "runs", "report")}
            c2["remeasured"] = {"runs": c2.get("runs"), "report": c2.get("report"), "first": first}
            if c2["verdict"] == UNRELIABLE:
                lead = (f"unreliable: still within noise after re-measuring once with {c2.get('runs')} runs "
                        f"(first measurement, {c.get('runs')} runs: {_ci_text(c)})")
            else:
                lead = (f"first measurement ({c.get('runs')} runs) was within noise ({_ci_text(c)}); "
                        f"re-measured once with {c2.get('runs')} runs: {c2['verdict']}")
            c2["notes"] = [lead, *c2["notes"]]
            checks[i] = c2
    for c in checks:
        c["passed"] = check_passes(c["verdict"], policy)
    return checks


def stage_check(ctx: Context, folder: Path) -> dict[str, Any]:
    from edgeprune.files.atomic import write_json
    from edgeprune.targets import load_target

    cfg = ctx.config
    b = cfg["budgets"] or {"max_ratio": None, "latency_ms": {}, "max_accuracy_drop": None}
    policy = unreliable_policy(b)  # works before config.py knows the key (then it is always "fail")
    checks: list[dict[str, Any]] = []
    for name in cfg.resolved["targets"]:
        target = load_target(name)

        def remeasure(target=target, name=name):
            config = _profile_config(ctx, target, REMEASURE_FACTOR)
            ctx.echo(f"      {name}: a budget lies inside the 95% CI; re-measuring with {config.runs} runs ...")
            profile_target(ctx, target, config, lambda v: remeasured_path(ctx, v, name))
            return _read_reports(lambda v: remeasured_path(ctx, v, name))

        reports = _read_reports(lambda v, name=name: profile_path(ctx, v, name))
        checks += latency_checks(ctx, name, _merged_target(ctx, target, b), reports, remeasure, policy)
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
    result = {"passed": all(c["passed"] for c in checks), "unreliable": policy, "checks": checks}
    write_json(folder / "check.json", result)
    return result
