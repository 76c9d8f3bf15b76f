"""Profile reports: the JSON written by ``edgeprune profile`` and read by ``edgeprune check``."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from edgeprune.errors import EdgepruneError
from edgeprune.profile.table import fmt_ms, format_table

SCHEMA = "edgeprune.profile/1"

# Keys `edgeprune check` and CI scripts rely on (dotted paths into the report).
REQUIRED = (
    "model.name", "model.path", "runtime", "runtime_version", "device", "threads", "precision", "batch",
    "runs", "warmup", "latency_ms.median", "latency_ms.p90", "latency_ms.median_ci95", "throughput_fps",
    "machine", "edgeprune_version",
)


class ReportError(EdgepruneError):
    """A profile report that cannot be read or lacks keys."""


def _get(report: dict[str, Any], dotted: str) -> Any:
    value: Any = report
    for part in dotted.split("."):
        if not isinstance(value, dict) or part not in value:
            raise KeyError(dotted)
        value = value[part]
    return value


def validate_report(report: Any, source: str = "report") -> dict[str, Any]:
    """Return ``report`` if it has every required key, else ReportError naming the first missing one."""
    if not isinstance(report, dict):
        raise ReportError(f"{source}: not a profile report (expected a JSON object)")
    for key in REQUIRED:
        try:
            _get(report, key)
        except KeyError:
            raise ReportError(f"{source}: not a profile report: missing key {key!r}") from None
    median = report["latency_ms"]["median"]
    if not isinstance(median, (int, float)) or median <= 0:
        raise ReportError(f"{source}: latency_ms.median must be a positive number, got {median!r}")
    return report


def load_report(path: str | os.PathLike) -> dict[str, Any]:
    """Read and validate a profile report JSON file."""
    p = Path(path)
    try:
        with open(p, encoding="utf-8") as f:
            data = json.load(f)
    except FileNotFoundError:
        raise ReportError(f"profile report not found: {p}") from None
    except json.JSONDecodeError as err:
        raise ReportError(f"{p}: not valid JSON ({err})") from None
    return validate_report(data, str(p))


def format_layers(layers: list[dict[str, Any]], top: int = 15) -> str:
    """Top-``top`` layers table."""
    rows = []
    for r in layers[:top]:
        kernels = ", ".join(sorted({n["exec_type"] for n in r["runtime_nodes"] if n["exec_type"]}))
        rows.append([r["layer"], r["op"], fmt_ms(r["time_ms"], 4), f"{100 * r['share']:.1f}%", kernels])
    more = f"\n({len(layers) - top} more layers in the JSON report)" if len(layers) > top else ""
    return format_table(["layer", "op", "ms/run", "share", "kernel / provider"], rows, "llrrl") + more


def format_report(report: dict[str, Any], top: int = 15) -> str:
    """Human-readable summary of a profile report."""
    lat = report["latency_ms"]
    m = report["machine"]
    isa = ", ".join(m.get("isa") or []) or "-"
    header = [
        f"model     {report['model']['name']}  ({report['model']['path']})",
        f"runtime   {report['runtime']} {report['runtime_version']}  device={report['device']}  "
        f"threads={report['threads']}  precision={report['precision']}",
        f"target    {report.get('target') or '-'}",
        f"machine   {m.get('cpu')}  [{isa}]  {m.get('usable_cores')} usable cores  {m.get('os')}",
        f"runs      {report['runs']} after {report['warmup']} warm-up, batch {report['batch']}",
        *(f"warning   {w}" for w in report.get("warnings", [])),
        "",
        "",
    ]
    lo, hi = lat["median_ci95"]
    table = format_table(
        ["latency ms", "median", "p90", "p99", "min", "mean", "std", "median 95% CI"],
        [["", fmt_ms(lat["median"]), fmt_ms(lat["p90"]), fmt_ms(lat["p99"]), fmt_ms(lat["min"]),
          fmt_ms(lat["mean"]), fmt_ms(lat["std"]), f"[{fmt_ms(lo)}, {fmt_ms(hi)}]"]],
    )
    text = "\n".join(header) + table + f"\n\nthroughput {report['throughput_fps']:.1f} img/s (batch {report['batch']}, one request at a time)"
    if report.get("layers"):
        text += (
            f"\n\nper-layer ({report['runtime']} profiler, {report.get('layers_total_ms', 0):.3f} ms/run "
            f"summed over layers)\n" + format_layers(report["layers"], top)
        )
    return text
