"""Compare two models on one runtime, timed interleaved (A B A B ...) in one process on the
same inputs, so that machine noise hits both alike. Reports the speedup of B over A and,
when both ONNX files carry ``edgeprune.flops`` in ``metadata_props``, the FLOPs ratio and
realized speedup per FLOPs reduction (the figure of merit for pruning)."""

from __future__ import annotations

import datetime as _dt
import os
from typing import Any, Mapping, Sequence

import numpy as np

from edgeprune import __version__
from edgeprune.errors import SpecError
from edgeprune.profile.machine import machine_info
from edgeprune.profile.profiler import ProfileConfig, model_info
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
) -> dict[str, Any]:
    """Time A and B interleaved for ``config.runs`` rounds; return a JSON-ready comparison.

    ``speedup`` is median(A) / median(B) (> 1: B is faster). ``paired_speedup`` is the
    median of per-round A/B ratios with its order-statistic 95% CI, which cancels drift
    that affects both models in the same round.
    """
    config.validate()
    a = open_runner(path_a, runtime, batch=config.batch, shapes=shapes, settings=settings)
    try:
        b = open_runner(path_b, runtime, batch=config.batch, shapes=shapes, settings=settings)
        try:
            _check_same_inputs(a, b, str(path_a), str(path_b))
            pool = make_input_pool(a.inputs, pool_size(a.inputs, config.runs + config.warmup), seed)
            samples_a, samples_b = time_calls(
                [a.run, b.run], pool, config.runs, config.warmup, progress=progress, desc="compare"
            )
            described = a.describe()
            sides = {}
            for key, path, runner, samples in (("a", path_a, a, samples_a), ("b", path_b, b, samples_b)):
                meta_reader = getattr(runner, "metadata", None)
                metadata = meta_reader() if meta_reader else read_metadata(path)
                sides[key] = {
                    "model": model_info(path, runner),
                    "latency_ms": summarize(samples).to_dict(),
                    "flops": parse_flops(metadata),
                    "precision": runner.describe()["precision"],
                }
        finally:
            b.close()
    finally:
        a.close()
    ratios = [x / y for x, y in zip(samples_a, samples_b)]
    paired = median_ci(ratios)
    speedup = sides["a"]["latency_ms"]["median"] / sides["b"]["latency_ms"]["median"]
    flops_a, flops_b = sides["a"]["flops"], sides["b"]["flops"]
    flops_ratio = flops_a / flops_b if flops_a and flops_b else None
    batch = a.inputs[0].shape[0] if a.inputs and a.inputs[0].shape else 1
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
        "machine": machine_info(),
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
