"""``profile(model, runtime settings) -> report``: the library call under ``edgeprune profile``."""

from __future__ import annotations

import datetime as _dt
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

from edgeprune import __version__
from edgeprune.files.hashing import sha256_file
from edgeprune.profile.layers import LayerNameMap, aggregate_layers
from edgeprune.profile.machine import machine_info
from edgeprune.profile.report import SCHEMA
from edgeprune.profile.stats import summarize, throughput_fps
from edgeprune.profile.timing import make_input_pool, pool_size, time_calls
from edgeprune.runtime import LayerProfiler, RunnerError, open_runner


@dataclass(frozen=True)
class ProfileConfig:
    """How to time a model.

    Attributes:
        runs: timed runs (after warm-up).
        warmup: untimed runs first (lazy init, caches, thread pools).
        batch: first-dimension size; None: the model's fixed batch, or 1 if dynamic.
    """

    runs: int = 100
    warmup: int = 10
    batch: int | None = None

    def validate(self, where: str = "profile") -> None:
        for key, low in (("runs", 1), ("warmup", 0)):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                kind = "a positive integer" if low else "a non-negative integer"
                raise RunnerError(f"{where}.{key} must be {kind}, got {value!r}")
        if self.batch is not None and (isinstance(self.batch, bool) or not isinstance(self.batch, int) or self.batch < 1):
            raise RunnerError(f"{where}.batch must be a positive integer, got {self.batch!r}")


def model_metadata(path: str | os.PathLike) -> dict[str, str]:
    """The edgeprune metadata of a model file: the ONNX ``metadata_props`` (of the .onnx beside an
    OpenVINO .xml, else the IR's own rt_info); {} when there is none."""
    from edgeprune.files.onnx_metadata import read_metadata

    p = Path(path)
    meta = read_metadata(p.with_suffix(".onnx")) if p.suffix == ".xml" else read_metadata(p)
    if not meta and p.suffix == ".xml":
        from edgeprune.export.openvino import read_ir_metadata

        try:
            meta = read_ir_metadata(p)
        except Exception:  # noqa: BLE001 - no IR metadata: fall back to the file name
            meta = {}
    return meta or {}


def default_model_name(path: str | os.PathLike, meta: dict[str, str] | None = None) -> str:
    """The name budgets are keyed by, from the artifact itself: a file edgeprune exported or
    quantized names its model from its ``edgeprune.spec`` (``resnet18``), with ``-dense`` for an
    unpruned export and ``-int8`` for a quantized one, as the pipeline and `make <target>` name
    them; any other file by its stem (or folder, for a generic ``model.onnx``). ``meta``: the
    file's `model_metadata`, when already read."""
    from edgeprune.models.spec import model_name_of_spec

    p = Path(path)
    meta = model_metadata(p) if meta is None else meta
    spec = meta.get("edgeprune.spec")
    if spec:
        base = model_name_of_spec(spec)
        if "edgeprune.quant" in meta:
            return f"{base}-int8"
        return base if "edgeprune.plan_fingerprint" in meta else f"{base}-dense"
    return p.parent.name if p.stem == "model" and p.parent.name else p.stem


def model_info(path: str | os.PathLike, runner: Any, name: str | None = None) -> dict[str, Any]:
    """Model identity for reports; ``name`` (default: `default_model_name`) is what budgets key on."""
    p = Path(path)
    meta = model_metadata(p)  # read once: a model file is parsed whole
    info = {
        "name": name or default_model_name(p, meta),
        "path": str(p),
        "sha256": sha256_file(p),
        "size_bytes": p.stat().st_size,
        "inputs": [{"name": i.name, "shape": list(i.shape), "dtype": str(i.dtype)} for i in runner.inputs],
    }
    predicted = predicted_latency(meta)
    if predicted is not None:
        info["predicted_latency"] = predicted
    return info


def predicted_latency(meta: dict[str, str]) -> dict[str, Any] | None:
    """The latency table's prediction a model's metadata carries (``edgeprune.latency_*``, from a
    prune to a latency budget or with --latency-table): target, precision and ms."""
    if "edgeprune.latency_predicted_ms" not in meta:
        return None
    if ("edgeprune.quant" in meta) != (meta.get("edgeprune.latency_precision", "fp32") == "int8"):
        return None  # an fp32 table's prediction is not the quantized model's, nor the other way round
    try:
        return {"target": meta.get("edgeprune.latency_target"), "precision": meta.get("edgeprune.latency_precision", "fp32"),
                "ms": float(meta["edgeprune.latency_predicted_ms"]),
                "dense_ms": float(meta.get("edgeprune.latency_dense_predicted_ms", "nan"))}
    except ValueError:
        return None


def timing_report(
    path: str | os.PathLike,
    runner: Any,
    described: dict[str, Any],
    samples: list[float],
    config: ProfileConfig,
    *,
    seed: int,
    pool_len: int,
    target: str | None,
    name: str | None,
    machine: dict[str, Any],
) -> dict[str, Any]:
    """The profile report (schema `edgeprune.profile/…`) of one model's timed ``samples``:
    what `profile_model` and the interleaved profiler both write."""
    stats = summarize(samples)
    warnings = []
    threads = described.get("threads")
    if isinstance(threads, int) and machine["usable_cores"] and threads > machine["usable_cores"]:
        warnings.append(
            f"{threads} threads on {machine['usable_cores']} usable cores: oversubscribed, timings are unreliable"
        )
    batch = runner.inputs[0].shape[0] if runner.inputs and runner.inputs[0].shape else 1
    return {
        "schema": SCHEMA,
        "model": model_info(path, runner, name),
        "target": target,
        "runtime": described["runtime"],
        "runtime_version": described["runtime_version"],
        "device": described["device"],
        "threads": described["threads"],
        "precision": described["precision"],
        "runtime_info": described,
        "batch": batch,
        "runs": config.runs,
        "warmup": config.warmup,
        "seed": seed,
        "input_pool": pool_len,
        "latency_ms": stats.to_dict(),
        "throughput_fps": throughput_fps(stats.median, batch),
        "samples_ms": samples,
        "machine": dict(machine),
        "warnings": warnings,
        "edgeprune_version": __version__,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }


def profile_model(
    path: str | os.PathLike,
    runtime: str,
    settings: Any = None,
    config: ProfileConfig = ProfileConfig(),
    *,
    shapes: Mapping[str, Sequence[int]] | None = None,
    per_layer: bool = False,
    seed: int = 0,
    progress: bool = False,
    target: str | None = None,
    name: str | None = None,
) -> dict[str, Any]:
    """Time ``path`` on ``runtime`` and return a profile report (a JSON-ready dict).

    Inputs are random, drawn from a pool generated before timing (one fresh set per run,
    up to a 256 MiB pool). With ``per_layer``, a second, profiling-enabled instance is run
    afterwards (``runs`` runs after ``warmup``) so the profiler does not perturb the timing.
    ``name`` is the model name budgets are looked up by (default: `default_model_name`).
    """
    config.validate()
    runner = open_runner(path, runtime, batch=config.batch, shapes=shapes, settings=settings)
    try:
        if per_layer and not isinstance(runner, LayerProfiler):
            raise RunnerError(f"per-layer profiling is not supported for runtime {runner.runtime!r}")
        described = runner.describe()
        pool = make_input_pool(runner.inputs, pool_size(runner.inputs, config.runs + config.warmup), seed)
        (samples,) = time_calls(
            [runner.run], pool, config.runs, config.warmup, progress=progress, desc=Path(path).stem
        )
        report = timing_report(path, runner, described, samples, config, seed=seed, pool_len=len(pool),
                               target=target, name=name, machine=machine_info())
        if per_layer:
            raw = runner.profile_layers(pool, config.runs, config.warmup)
            layers = aggregate_layers(raw, LayerNameMap.from_onnx(path))
            report["layers"] = layers
            report["layers_total_ms"] = sum(r["time_ms"] for r in layers)
        return report
    finally:
        runner.close()
