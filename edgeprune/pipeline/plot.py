"""Accuracy vs latency (the Pareto view) as a PNG, only where matplotlib is installed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

MARKERS = {"dense": "o", "pruned": "s", "pruned-int8": "^"}


def pareto_plot(report: dict[str, Any], path: str | Path) -> bool:
    """Plot top-1 (deployed ONNX Runtime figure, else torch) against median latency, one series
    per target; returns False (and writes nothing) without matplotlib or without accuracy."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    points = []
    for name, v in report["variants"].items():
        acc = v["accuracy"].get("ort", v["accuracy"].get("torch"))
        if acc is None:
            continue
        for target, lat in v["latency"].items():
            points.append((target, name, lat["median_ms"], lat["p90_ms"], acc))
    if not points:
        return False
    fig, ax = plt.subplots(figsize=(6.4, 4.2), dpi=110)
    for t, target in enumerate(report["targets"]):
        pts = sorted((p for p in points if p[0] == target), key=lambda p: p[2])
        if not pts:
            continue
        line = ax.plot([p[2] for p in pts], [100 * p[4] for p in pts], "-", alpha=0.4)[0]
        for _, name, med, p90, acc in pts:
            ax.errorbar([med], [100 * acc], xerr=[[0], [p90 - med]], fmt=MARKERS.get(name, "o"),
                        color=line.get_color(), capsize=3)
            ax.annotate(name, (med, 100 * acc), textcoords="offset points", xytext=(5, 4 - 11 * t), fontsize=8)
        line.set_label(target)
    ax.set_xlabel("median latency, batch 1 (ms; bar to p90)")
    ax.set_ylabel("top-1 accuracy (%)")
    ax.set_title(f"{report['name']}: accuracy vs latency")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return True
