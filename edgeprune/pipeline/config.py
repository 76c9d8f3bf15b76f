"""The pipeline's TOML config: schema, defaults and validation of the whole file up front.

Every problem is reported as ``FILE: section.key: what is wrong`` (all of them at once), before
any stage runs or anything is written. Relative paths (weights, data folders, calibration
manifests) are relative to the config file's folder.
"""

from __future__ import annotations

import copy
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgeprune.errors import EdgepruneError
from edgeprune.files.toml import load_toml
from edgeprune.models.spec import model_name_of_spec as default_model_name
from edgeprune.pruning.request import DEFAULT_MIN_KEEP

SCHEMA = "edgeprune.pipeline.config/1"
VARIANTS = ("dense", "pruned", "pruned-int8")
REQUIRED = object()


class PipelineConfigError(EdgepruneError):
    """A pipeline config that cannot run; each line names the file and the dotted field."""


# section -> key -> (type name, default). Types: str, int, float, bool, list[str], table,
# int|auto, bool|str, int|none.
SCHEMA_KEYS: dict[str, dict[str, tuple[str, Any]]] = {
    "": {"name": ("str", None), "description": ("str", "")},
    "model": {
        "spec": ("str", REQUIRED), "name": ("str", None), "weights": ("str", None),
        "input_shape": ("str", None), "mean": ("list[float]", None), "std": ("list[float]", None),
    },
    "data": {
        "name": ("str", REQUIRED), "root": ("str", None), "train_subset": ("int", None),
        "test_subset": ("int", None), "eval_batch_size": ("int", 100), "augment": ("str", "auto"),
    },
    "train": {"epochs": ("int", REQUIRED), "lr": ("float", 0.1), "batch_size": ("int", 128), "seed": ("int", 0)},
    "prune": {
        "method": ("str", REQUIRED), "budget": ("str", REQUIRED), "min_keep": ("float", DEFAULT_MIN_KEEP),
        "align": ("int|auto", "auto"), "epochs": ("int", None), "finetune_epochs": ("int", 0),
        "lr": ("float", None), "batch_size": ("int", 128), "seed": ("int", 0), "options": ("table", {}),
        "scratch": ("str", None), "latency_table": ("str", None),
    },
    "export": {"formats": ("list[str]", ["onnx", "openvino"]), "opset": ("int", 17), "fp16": ("bool", False)},
    "quantize": {
        "enabled": ("bool", True), "calib": ("str", None), "method": ("str", "aciq"),
        "weight_bits": ("int", 8), "act_bits": ("int", 8), "bias_correction": ("bool|str", False),
        "reduce_range": ("bool|str", "auto"),
    },
    "targets": {"names": ("list[str]", ["x86-ort-1t"]), "runs": ("int", None), "warmup": ("int", None)},
    "budgets": {"max_ratio": ("float", None), "latency_ms": ("table", {}), "max_accuracy_drop": ("float", None),
                "unreliable": ("str", "fail")},
}
OPTIONAL_SECTIONS = ("data", "train", "quantize", "budgets")


def _type_ok(kind: str, value: Any) -> bool:
    if kind == "str":
        return isinstance(value, str)
    if kind == "int":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "float":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if kind == "bool":
        return isinstance(value, bool)
    if kind == "list[str]":
        return isinstance(value, list) and all(isinstance(v, str) for v in value)
    if kind == "list[float]":
        return isinstance(value, list) and all(_type_ok("float", v) for v in value)
    if kind == "table":
        return isinstance(value, dict)
    if kind == "int|auto":
        return value == "auto" or _type_ok("int", value)
    if kind == "bool|str":
        return isinstance(value, (bool, str))
    raise AssertionError(kind)


_KIND_TEXT = {
    "str": "a string", "int": "an integer", "float": "a number", "bool": "true or false",
    "list[str]": "a list of strings", "list[float]": "a list of numbers", "table": "a table",
    "int|auto": "a positive integer or \"auto\"", "bool|str": "true, false or a string",
}


@dataclass
class PipelineConfig:
    """A validated config: ``sections`` holds every section with defaults filled in (absent
    optional sections are None)."""

    path: Path
    sections: dict[str, Any]
    text_sha256: str
    resolved: dict[str, Any] = field(default_factory=dict)  # align, paths, targets, ...

    def __getitem__(self, name: str) -> Any:
        return self.sections[name]

    @property
    def name(self) -> str:
        return self.sections[""]["name"]

    def _data_request(self) -> dict[str, Any]:
        """The [data] section as prune-request fields (none without [data])."""
        d = self.sections["data"]
        return {} if d is None else {
            "data": self.resolved.get("data"), "data_root": self.resolved.get("data_root"),
            "train_subset": d.get("train_subset"), "test_subset": d.get("test_subset"),
            "eval_batch_size": d.get("eval_batch_size"), "augment": d.get("augment"),
        }

    def prune_request(self, out: Path, input_shape: tuple[int, ...] | None = None, dense: Path | None = None):
        """The [prune] section as the prune job's request: the dense stage's model.pt (in
        ``dense``, by default ``out``'s sibling ``dense/``) pruned into ``out``; ``align =
        "auto"`` takes the first target's."""
        from edgeprune.pruning.request import PruneRequest

        p, targets = self.sections["prune"], self.resolved.get("targets") or []
        data = self._data_request()
        m = self.sections["model"]
        return PruneRequest.build(
            model=self.sections["model"].get("spec", ""), budget=p.get("budget", ""), out=str(out),
            method=p.get("method", ""), options=p.get("options") or {},
            weights=str((dense or Path(out).parent / "dense") / "model.pt"),
            weights_trained=self.sections["train"] is not None or self.sections["model"].get("weights") is not None,
            input_shape=input_shape, mean=m.get("mean"), std=m.get("std"), min_keep=p.get("min_keep"), align=p.get("align"),
            target=targets[0] if targets else "", epochs=p.get("epochs"),
            finetune_epochs=p.get("finetune_epochs"), lr=p.get("lr"), batch_size=p.get("batch_size"),
            seed=p.get("seed"), latency_table=self.resolved.get("latency_table"), **data,
        )

    def scratch_request(self, out: Path, plan: Path, input_shape: tuple[int, ...] | None = None):
        """``prune.scratch = "E"|"B"``: the plan in ``plan`` (what [prune]'s method made) trained
        from random initialisation into ``out`` with [train]'s schedule (its epochs are the dense
        model's: Scratch-E trains as many, Scratch-B the FLOPs-equivalent)."""
        from edgeprune.pruning.request import PruneRequest

        p, t = self.sections["prune"], self.sections["train"] or {}
        data = self._data_request()
        m = self.sections["model"]
        return PruneRequest.build(
            model=m.get("spec", ""), from_plan=str(plan), scratch=p.get("scratch"), out=str(out),
            input_shape=input_shape, mean=m.get("mean"), std=m.get("std"), epochs=t.get("epochs"),
            lr=t.get("lr"), batch_size=t.get("batch_size", 128), seed=t.get("seed", 0), **data,
        )


def pipeline_name(name: str) -> str:
    """How a pipeline config spells a prune request field."""
    special = {"data": "a [data] section", "model": "model.spec", "weights": "model.weights",
               "input_shape": "model.input_shape", "target": "targets.names[0]"}
    return special.get(name, f"prune.{name}")


def load_config(path: str | os.PathLike) -> PipelineConfig:
    """Read and validate the whole config; PipelineConfigError lists every problem found."""
    path = Path(path)
    data, digest = load_toml(path, "pipeline config", PipelineConfigError)
    errors: list[str] = []

    def err(where: str, message: str) -> None:
        errors.append(f"{path}: {where}: {message}")

    sections: dict[str, Any] = {}
    top = {k: v for k, v in data.items() if not isinstance(v, dict)}
    for key in data:
        if isinstance(data[key], dict) and key not in SCHEMA_KEYS:
            err(f"[{key}]", f"unknown section; allowed: {', '.join('[' + s + ']' for s in SCHEMA_KEYS if s)}")
    for name, keys in SCHEMA_KEYS.items():
        if name == "":
            table = top
        elif name in data:
            table = data[name]
        elif name in OPTIONAL_SECTIONS:
            sections[name] = None
            continue
        else:
            table = {}
        if name and not isinstance(table, dict):
            err(name, "must be a table ([" + name + "])")
            table = {}
        filled: dict[str, Any] = {}
        for key, value in table.items():
            dotted = f"{name}.{key}" if name else key
            if key not in keys:
                err(dotted, f"unknown key; allowed in {'[' + name + ']' if name else 'the top level'}: {', '.join(keys)}")
                continue
            kind = keys[key][0]
            if not _type_ok(kind, value):
                err(dotted, f"must be {_KIND_TEXT[kind]}, got {value!r}")
                continue
            filled[key] = value
        for key, (_, default) in keys.items():
            if key in filled:
                continue
            if default is REQUIRED:
                if any(e.startswith(f"{path}: {name}.{key}:") for e in errors):
                    continue
                if name == "model" or name == "prune" or name in data:
                    err(f"{name}.{key}", "is required")
                continue
            filled[key] = copy.deepcopy(default)
        sections[name] = filled

    cfg = PipelineConfig(path=path, sections=sections, text_sha256=digest)
    _check_values(cfg, err)
    if errors:
        raise PipelineConfigError("\n".join(errors))
    return cfg


def _relative(cfg: PipelineConfig, value: str) -> Path:
    p = Path(value).expanduser()
    return p if p.is_absolute() else (cfg.path.parent / p)


def _check_values(cfg: PipelineConfig, err) -> None:
    """Semantic checks; each goes through ``err(dotted, message)``."""
    from edgeprune.errors import EdgepruneError as _Err

    model, data, train = cfg["model"], cfg["data"], cfg["train"]
    export, quant, targets, budgets = cfg["export"], cfg["quantize"], cfg["targets"], cfg["budgets"]
    resolved = cfg.resolved
    top = cfg[""]
    if top.get("name") is None:
        top["name"] = cfg.path.stem

    def _check_model():  # [model]
        from edgeprune.models.spec import parse_input_shape, parse_spec

        if "spec" in model:
            try:
                model["spec"] = parse_spec(model["spec"]).text
            except _Err as e:
                err("model.spec", str(e))
            else:
                problem = spec_problem(model["spec"])
                if problem:
                    err("model.spec", problem)
        if model.get("name") is None:
            model["name"] = default_model_name(model.get("spec", "model"))
        elif not re.fullmatch(r"[A-Za-z0-9_.-]+", model["name"]):
            err("model.name", f"must be letters, digits, '_', '-' or '.', got {model['name']!r}")
        shape = None
        if model.get("input_shape") is not None:
            try:
                shape = parse_input_shape(model["input_shape"])
            except _Err as e:
                err("model.input_shape", str(e).replace("--input-shape", "input_shape"))
        if model.get("weights") is not None:
            weights = _relative(cfg, model["weights"])
            if not weights.is_file():
                err("model.weights", f"file {str(weights)!r} does not exist")
            resolved["weights"] = str(weights)
        source = model.get("spec", "").split(":", 1)[0]
        if model.get("mean") is None and source not in ("torchvision", "edgeprune") and "spec" in model:
            err("model.mean", f"{model['spec']} is your own model: give model.mean and model.std (per channel, "
                "for pixels in [0, 1]; they go into the exported files), e.g. mean = [0.485, 0.456, 0.406]")
        elif (model.get("mean") is None) != (model.get("std") is None):
            err("model.mean" if model.get("mean") is None else "model.std", "give both model.mean and model.std, or neither")
        elif model.get("mean") is not None:
            if len(model["mean"]) != len(model["std"]):
                err("model.std", f"has {len(model['std'])} values but model.mean has {len(model['mean'])}")
            if shape is not None and len(shape) > 1 and len(model["mean"]) != shape[1]:
                err("model.mean", f"has {len(model['mean'])} values for {shape[1]} input channels")

    def _check_data():  # [data]
        if data is not None:
            name = data["name"]
            if name.lower() == "fashion-mnist":
                resolved["data"] = "fashion-mnist"
                if data.get("root") is not None:
                    root = _relative(cfg, data["root"])
                    if not root.is_dir():
                        err("data.root", f"folder {str(root)!r} does not exist")
                    resolved["data_root"] = str(root)
            else:
                folder = _relative(cfg, name)
                if not folder.is_dir():
                    err("data.name", f"{name!r} is neither fashion-mnist nor an existing image folder (train/<class>/, test/<class>/)")
                resolved["data"] = str(folder)
                if data.get("root") is not None:
                    err("data.root", "only applies to fashion-mnist (an image folder is data.name itself)")
            from edgeprune.data import AUGMENTS

            if data.get("augment") not in AUGMENTS:
                err("data.augment", f"must be one of {', '.join(AUGMENTS)}, got {data.get('augment')!r}")
            for key, low in (("train_subset", 2), ("test_subset", 1), ("eval_batch_size", 1)):
                if data.get(key) is not None and data[key] < low:
                    err(f"data.{key}", f"must be at least {low}, got {data[key]}")

    def _check_train():  # [train]
        if train is not None:
            if data is None:
                err("[train]", "training the dense model needs a [data] section")
            if model.get("weights") is not None:
                err("[train]", "model.weights is given: the dense model is loaded, not trained; drop one of them")
            _positive(err, train, "train", ("epochs", "lr", "batch_size"))
            if train.get("batch_size", 2) < 2:
                err("train.batch_size", "must be at least 2 (BatchNorm)")

    def _check_prune():  # [prune]: the prune job's own checks, named as this file spells them
        if cfg["prune"].get("latency_table") is not None:  # relative to this file, like model.weights
            resolved["latency_table"] = str(_relative(cfg, cfg["prune"]["latency_table"]))
        request = cfg.prune_request(Path("prune"))
        problems = [(n, m) for n, m in request.problems(pipeline_name)
                    if n not in ("model", "mean", "std", "augment")]  # [model] / [data] report these
        for name, message in problems:
            err("prune.method" if name == "data" else pipeline_name(name), message)
        bad = {name for name, _ in problems}
        resolved["training_time"] = request.training_time if not bad & {"method", "options"} and not any(
            n.startswith("options.") for n in bad) else False
        resolved["align"] = None if bad & {"align", "target"} else request.resolved_align()
        scratch = cfg["prune"].get("scratch")
        if scratch is not None:
            from edgeprune.pruning.scratch import MODES

            if scratch.strip().upper() not in MODES:
                err("prune.scratch", f"must be \"E\" (the dense model's epochs) or \"B\" (the same training FLOPs), "
                    f"got {scratch!r}")
            if cfg["train"] is None:
                err("prune.scratch", "needs a [train] section: Scratch-E/B retrain the plan's architecture from "
                    "random initialisation with the dense model's schedule ([train].epochs, lr, batch_size, seed)")
            if cfg["data"] is None:
                err("prune.scratch", "needs a [data] section to train on")

    def _check_export():  # [export]
        from edgeprune.export.options import FORMATS, ExportOptions

        for fmt in export["formats"]:
            if fmt not in FORMATS:
                err("export.formats", f"unknown format {fmt!r}; choose from {', '.join(FORMATS)}")
        if "onnx" not in export["formats"]:
            err("export.formats", "must include \"onnx\" (profiling, accuracy and quantization read model.onnx)")
        else:
            try:
                ExportOptions(formats=tuple(export["formats"]), opset=export["opset"], fp16=export["fp16"]).validate()
            except _Err as e:
                err("export", str(e))

    def _check_quantize():  # [quantize]
        if quant is not None and quant["enabled"]:
            try:
                from edgeprune.quant import QuantizeConfig
                from edgeprune.quant.calibration import find_manifest
            except ImportError as e:
                err("quantize.enabled", f"edgeprune.quant is not available ({e}); set enabled = false or drop [quantize]")
            else:
                config = QuantizeConfig(method=quant["method"], weight_bits=quant["weight_bits"],
                                        act_bits=quant["act_bits"], bias_correction=quant["bias_correction"],
                                        reduce_range=quant["reduce_range"])
                for key, message in config.errors().items():
                    err(f"quantize.{key}", message)
                if quant.get("calib") is None:
                    err("quantize.calib", "is required: a calibration manifest (calibration/NAME.toml name or a .toml path)")
                else:
                    local = _relative(cfg, quant["calib"])
                    try:
                        resolved["calib"] = str(local if local.is_file() else find_manifest(quant["calib"]))
                    except _Err as e:
                        err("quantize.calib", str(e))

    def _check_targets():  # [targets]
        from edgeprune.targets import list_targets, load_target

        loaded = []
        if not targets["names"]:
            err("targets.names", f"name at least one target; available: {', '.join(list_targets())}")
        if len(set(targets["names"])) != len(targets["names"]):
            err("targets.names", "a target is listed twice")
        for i, tname in enumerate(targets["names"]):
            try:
                target = load_target(tname)
            except _Err as e:
                err(f"targets.names[{i}]", str(e))
                continue
            loaded.append(target)
            if target.runtime.name == "openvino" and "openvino" not in export["formats"]:
                err(f"targets.names[{i}]", f"target {target.name} runs OpenVINO: add \"openvino\" to export.formats")
        for key, low in (("runs", 1), ("warmup", 0)):
            if targets.get(key) is not None and targets[key] < low:
                err(f"targets.{key}", f"must be at least {low}, got {targets[key]}")
        resolved["targets"] = [t.name for t in loaded]
        resolved["target_files"] = {t.name: t.source for t in loaded}

    def _check_budgets():  # [budgets]
        if budgets is not None:
            if budgets.get("unreliable", "fail") not in ("fail", "warn"):
                err("budgets.unreliable", f'must be "fail" or "warn", got {budgets["unreliable"]!r}')
            if budgets.get("max_ratio") is not None and not budgets["max_ratio"] > 0:
                err("budgets.max_ratio", f"must be positive, got {budgets['max_ratio']}")
            if budgets.get("max_accuracy_drop") is not None:
                if data is None:
                    err("budgets.max_accuracy_drop", "accuracy needs a [data] section")
                if not 0 <= budgets["max_accuracy_drop"] <= 1:
                    err("budgets.max_accuracy_drop", f"must be a fraction in [0, 1], got {budgets['max_accuracy_drop']}")
            for variant, ms in budgets["latency_ms"].items():
                if variant not in VARIANTS:
                    err(f"budgets.latency_ms.{variant}", f"unknown variant; use {', '.join(VARIANTS)}")
                elif not _type_ok("float", ms) or ms <= 0:
                    err(f"budgets.latency_ms.{variant}", f"must be a positive number of milliseconds, got {ms!r}")
                elif variant == "pruned-int8" and not (quant is not None and quant["enabled"]):
                    err(f"budgets.latency_ms.{variant}", "needs an enabled [quantize] section")

    for check in (_check_model, _check_data, _check_train, _check_export, _check_quantize, _check_targets, _check_prune,
                  _check_budgets):
        try:
            check()
        except (KeyError, TypeError, AttributeError):  # a field already reported as missing or mistyped
            pass


def spec_problem(text: str) -> str | None:
    """Why the (well-formed) model spec ``text`` names no model, else None: an unknown
    torchvision or edgeprune model, a module that cannot be imported, or no such callable in
    it. Nothing is built (a factory is not called)."""
    import importlib
    import importlib.util

    from edgeprune.models.spec import parse_spec

    spec = parse_spec(text)
    if spec.source == "edgeprune":
        from edgeprune.models.zoo import ZOO

        return None if spec.name in ZOO else f"unknown edgeprune model {spec.name!r}; available: {', '.join(sorted(ZOO))}"
    if spec.source == "torchvision":
        try:
            import torchvision
        except ImportError as e:
            return f"{text}: torchvision is not installed ({e})"
        names = torchvision.models.list_models(module=torchvision.models)
        if spec.name in names:
            return None
        close = [n for n in names if spec.name[:4] in n][:8]
        return f"unknown torchvision model {spec.name!r}" + (
            f"; did you mean one of {', '.join(close)}?" if close else "; see torchvision.models.list_models()")
    try:
        found = importlib.util.find_spec(spec.source)
    except (ImportError, ValueError) as e:
        found, why = None, str(e)
    else:
        why = f"no module named {spec.source!r}"
    if found is None:
        return f"{text}: cannot import module {spec.source!r} ({why}); is it on PYTHONPATH?"
    try:
        module = importlib.import_module(spec.source)
    except Exception as e:  # noqa: BLE001 - the user's module failed to import
        return f"{text}: importing module {spec.source!r} failed ({type(e).__name__}: {e})"
    if not callable(getattr(module, spec.name, None)):
        return f"{text}: module {spec.source!r} has no callable {spec.name!r}"
    return None


def stop_after_epochs(cfg: PipelineConfig) -> dict[str, int]:
    """The training stages of ``cfg`` and their epochs: what ``--stop-after STAGE:EPOCH`` may name
    ("dense" when [train] trains the dense model; "prune" for a training-time method or a
    one-shot method with prune.finetune_epochs)."""
    stages: dict[str, int] = {}
    if cfg["train"] is not None:
        stages["dense"] = int(cfg["train"]["epochs"])
    prune = cfg["prune"]
    if prune.get("scratch") is not None and cfg["train"] is not None:
        stages["prune"] = int(cfg["train"]["epochs"])  # Scratch-E's epochs; Scratch-B trains at least as many
    elif cfg.resolved.get("training_time") and prune.get("epochs"):
        stages["prune"] = int(prune["epochs"])
    elif not cfg.resolved.get("training_time") and (prune.get("finetune_epochs") or 0) > 0:
        stages["prune"] = int(prune["finetune_epochs"])
    return stages


def check_stop_after(cfg: PipelineConfig, stops: dict[str, int]) -> None:
    """PipelineConfigError unless every ``--stop-after STAGE:EPOCH`` names a training stage of
    ``cfg`` and an epoch it reaches (a stop that would never happen is an error, not ignored)."""
    allowed = stop_after_epochs(cfg)
    choices = ", ".join(f"{name}:1..{epochs}" for name, epochs in allowed.items()) or (
        "none: this config trains nothing (no [train] section, a one-shot prune without finetune_epochs)")
    problems = []
    for stage, epoch in stops.items():
        if stage not in allowed:
            problems.append(f"--stop-after {stage}:{epoch}: {cfg.path} does not train a {stage!r} stage; allowed: {choices}")
        elif not 1 <= epoch <= allowed[stage]:
            problems.append(f"--stop-after {stage}:{epoch}: the {stage} stage of {cfg.path} trains "
                            f"{allowed[stage]} epochs; allowed: {choices}")
    if problems:
        raise PipelineConfigError("\n".join(problems))


def _positive(err, table: dict[str, Any], name: str, keys) -> None:
    for key in keys:
        if table.get(key) is not None and not table[key] > 0:
            err(f"{name}.{key}", f"must be positive, got {table[key]}")
