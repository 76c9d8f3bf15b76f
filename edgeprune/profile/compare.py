"""Compare models on one runtime, timed interleaved (A B A B ...) in one process on the
same inputs, so that machine noise hits them alike.

`compare_models` reports the speedup of B over A and, when both ONNX files carry
``edgeprune.flops`` in ``metadata_props``, the FLOPs ratio and realized speedup per FLOPs
reduction (the figure of merit for pruning). `profile_models_interleaved` times any number
of models the same way and returns one profile report per model (what ``edgeprune profile``
writes, plus an ``interleaved`` field); the pipeline's profile stage uses it."""

from __future__ import annotations

import datetime as _dt
import os
import uuid
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from edgeprune import __version__
from edgeprune.errors import SpecError
from edgeprune.profile.machine import machine_info
from edgeprune.profile.profiler import ProfileConfig, default_model_name, model_info, timing_report
from edgeprune.profile.stats import median_ci, summarize
from edgeprune.profile.table import fmt_ms, format_table
from edgeprune.profile.timing import make_input_pool, pool_size, time_calls
from edgeprune.files.onnx_metadata import read_metadata
from edgeprune.runtime import open_runner

FLOPS_KEY = "edgeprune.flops"
SCHEMA = "edgeprune.compare/1"


def parse_flops(metadata: Mapping[str, str]) -> float | None:
    """The ``edgeprune.flops`` value as a number, or None when absent or not a positive number."""
    text = metadata.get(FLOPS_KEY)
    if text is None:
        return None
    try:
        value = float(text)
    except ValueError:
        return None
    return value if value > 0 else None


def _check_same_inputs(a: Any, b: Any, path_a: str, path_b: str) -> None:
    sig_a = [(i.name, tuple(i.shape), str(i.dtype)) for i in a.inputs]
    sig_b = [(i.name, tuple(i.shape), str(i.dtype)) for i in b.inputs]
    if sig_a != sig_b:
        raise SpecError(
            f"{path_a} and {path_b} take different inputs, so they cannot share them: {sig_a} vs {sig_b}"
        )


def _run_interleaved(
    paths: Sequence[str | os.PathLike],
    runtime: str,
    settings: Any,
    config: ProfileConfig,
    collect: Callable[[int, str | os.PathLike, Any, list[float], int], Any],
    *,
    shapes: Mapping[str, Sequence[int]] | None,
    seed: int,
    progress: bool,
    desc: str,
) -> list[Any]:
    """Open one runner per path, check they take the same inputs, time them round-robin
    (A B C A B C ...) on one pool of fresh random inputs, and return
    ``collect(index, path, runner, samples_ms, pool_len)`` per model, called while the runners
    are open."""
    config.validate()
    paths = list(paths)
    if not paths:
        raise SpecError("no models to time")
    if len(paths) > 1:
        settings = _not_spinning(runtime, settings)
    runners: list[Any] = []
    try:
        for path in paths:
            runners.append(open_runner(path, runtime, batch=config.batch, shapes=shapes, settings=settings))
        for path, runner in zip(paths[1:], runners[1:]):
            _check_same_inputs(runners[0], runner, str(paths[0]), str(path))
        first = runners[0]
        pool = make_input_pool(first.inputs, pool_size(first.inputs, config.runs + config.warmup), seed)
        samples = time_calls([r.run for r in runners], pool, config.runs, config.warmup, progress=progress, desc=desc)
        return [collect(k, path, runner, s, len(pool)) for k, (path, runner, s) in enumerate(zip(paths, runners, samples))]
    finally:
        for runner in reversed(runners):
            runner.close()


def _not_spinning(runtime: str, settings: Any) -> Any:
    """ORT sessions timed interleaved must not spin between calls (`OrtSettings.allow_spinning`)."""
    import dataclasses

    from edgeprune.runtime.onnxruntime import OrtSettings

    if runtime not in ("ort", "onnxruntime"):
        return settings
    settings = OrtSettings() if settings is None else settings
    return dataclasses.replace(settings, allow_spinning=False) if isinstance(settings, OrtSettings) else settings


INTERLEAVED_ORDER = "round-robin in the listed order, the same input set for every model in a round"


def profile_models_interleaved(
    paths: Sequence[str | os.PathLike],
    runtime: str,
    settings: Any = None,
    config: ProfileConfig = ProfileConfig(),
    *,
    names: Sequence[str | None] | None = None,
    labels: Sequence[str] | None = None,
    shapes: Mapping[str, Sequence[int]] | None = None,
    seed: int = 0,
    progress: bool = False,
    target: str | None = None,
) -> list[dict[str, Any]]:
    """Time all ``paths`` in one interleaved loop (A B C A B C ...) and return one profile
    report per model, in order.

    Each report has the schema and keys of `edgeprune.profile.profiler.profile_model`
    (without per-layer data), so ``edgeprune check`` and the pipeline read it alike, plus
    ``interleaved``: ``id`` (shared by the reports of one loop: their ``samples_ms[i]`` were
    taken in the same round), ``models`` (names in loop order), ``variants`` (``labels``,
    default the names), ``position`` (this model's index) and ``order``. ``names`` are the
    model names budgets are looked up by (default: `default_model_name` of each path).
    All models must take the same inputs.
    """
    paths = list(paths)
    names = list(names) if names is not None else [None] * len(paths)
    if len(names) != len(paths):
        raise SpecError(f"{len(paths)} models but {len(names)} names")
    names = [n or default_model_name(p) for n, p in zip(names, paths)]
    labels = list(labels) if labels is not None else list(names)
    if len(labels) != len(paths):
        raise SpecError(f"{len(paths)} models but {len(labels)} labels")
    loop_id = uuid.uuid4().hex
    machine = machine_info()

    def collect(k, path, runner, samples, pool_len):
        report = timing_report(path, runner, runner.describe(), samples, config, seed=seed, pool_len=pool_len,
                               target=target, name=names[k], machine=machine)
        report["interleaved"] = {"id": loop_id, "models": list(names), "variants": list(labels), "position": k,
                                 "order": INTERLEAVED_ORDER}
        return report

    return _run_interleaved(paths, runtime, settings, config, collect, shapes=shapes, seed=seed,
                            progress=progress, desc="+".join(labels))


def compare_models(
    path_a: str | os.PathLike,
    path_b: str | os.PathLike,
    runtime: str,
    settings: Any = None,
    config: ProfileConfig = ProfileConfig(),
    *,
    shapes: Mapping[str, Sequence[int]] | None = None,
    seed: int = 0,
    progress: bool = False,
    target: str | None = None,
    names: Sequence[str | None] | None = None,
) -> dict[str, Any]:
    """Time A and B interleaved for ``config.runs`` rounds; return a JSON-ready comparison.

    ``speedup`` is median(A) / median(B) (> 1: B is faster). ``paired_speedup`` is the
    median of per-round A/B ratios with its order-statistic 95% CI, which cancels drift
    that affects both models in the same round. ``profile_reports`` holds one profile report
    per side (the schema ``edgeprune profile`` writes, with ``interleaved``, model names
    ``names`` or each file's default), so ``edgeprune check --baseline`` can hold B to a
    budget relative to A with a paired CI.
    """
    names = list(names) if names is not None else [None, None]
    names = [n or default_model_name(p) for n, p in zip(names, (path_a, path_b))]
    loop_id = uuid.uuid4().hex
    machine = machine_info()

    def collect(k, path, runner, samples, pool_len):
        meta_reader = getattr(runner, "metadata", None)
        metadata = meta_reader() if meta_reader else read_metadata(path)
        described = runner.describe()
        side = {
            "model": model_info(path, runner),
            "latency_ms": summarize(samples).to_dict(),
            "flops": parse_flops(metadata),
            "precision": described["precision"],
        }
        batch = runner.inputs[0].shape[0] if runner.inputs and runner.inputs[0].shape else 1
        report = timing_report(path, runner, described, samples, config, seed=seed, pool_len=pool_len,
                               target=target, name=names[k], machine=machine)
        report["interleaved"] = {"id": loop_id, "models": list(names), "variants": ["a", "b"], "position": k,
                                 "order": INTERLEAVED_ORDER}
        return side, samples, described, batch, report

    (side_a, samples_a, described, batch, report_a), (side_b, samples_b, _, _, report_b) = _run_interleaved(
        [path_a, path_b], runtime, settings, config, collect, shapes=shapes, seed=seed, progress=progress,
        desc="compare",
    )
    sides = {"a": side_a, "b": side_b}
    ratios = [x / y for x, y in zip(samples_a, samples_b)]
    paired = median_ci(ratios)
    speedup = sides["a"]["latency_ms"]["median"] / sides["b"]["latency_ms"]["median"]
    flops_a, flops_b = sides["a"]["flops"], sides["b"]["flops"]
    flops_ratio = flops_a / flops_b if flops_a and flops_b else None
    return {
        "schema": SCHEMA,
        "target": target,
        "runtime": described["runtime"],
        "runtime_version": described["runtime_version"],
        "device": described["device"],
        "threads": described["threads"],
        "runtime_info": described,
        "batch": batch,
        "rounds": config.runs,
        "warmup": config.warmup,
        "order": "interleaved A B A B, same input per round",
        "a": sides["a"],
        "b": sides["b"],
        "speedup": speedup,
        "paired_speedup": {"median": float(np.median(ratios)), "ci95": [paired.low, paired.high]},
        "flops_ratio": flops_ratio,
        "speedup_per_flops_ratio": speedup / flops_ratio if flops_ratio else None,
        "machine": machine,
        "profile_reports": {"a": report_a, "b": report_b},
        "edgeprune_version": __version__,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }


def format_comparison(result: dict[str, Any]) -> str:
    """Human-readable comparison table."""
    rows = []
    for key in ("a", "b"):
        side = result[key]
        lat = side["latency_ms"]
        flops = side["flops"]
        rows.append([
            key.upper(), side["model"]["name"], fmt_ms(lat["median"]),
            f"[{fmt_ms(lat['median_ci95'][0])}, {fmt_ms(lat['median_ci95'][1])}]", fmt_ms(lat["p90"]),
            f"{flops / 1e6:.1f}" if flops else "-",
        ])
    table = format_table(["", "model", "median ms", "95% CI", "p90 ms", "MFLOPs"], rows, "llrrrr")
    paired = result["paired_speedup"]
    lines = [
        f"{result['runtime']} {result['runtime_version']}  device={result['device']}  threads={result['threads']}  "
        f"target={result['target'] or '-'}  {result['rounds']} rounds (A B A B) after {result['warmup']} warm-up",
        "",
        table,
        "",
        f"speedup B vs A   {result['speedup']:.3f}x  (paired per-round median {paired['median']:.3f}x, "
        f"95% CI [{paired['ci95'][0]:.3f}, {paired['ci95'][1]:.3f}])",
    ]
    if result["flops_ratio"]:
        lines.append(
            f"FLOPs A / B      {result['flops_ratio']:.3f}x  -> realized speedup per FLOPs reduction "
            f"{result['speedup_per_flops_ratio']:.2f}"
        )
    else:
        missing = [result[k]["model"]["name"] for k in ("a", "b") if not result[k]["flops"]]
        lines.append(f"FLOPs ratio      - ({', '.join(missing)} carry no {FLOPS_KEY} metadata)")
    return "\n".join(lines)
