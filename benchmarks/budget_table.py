"""Requested vs achieved FLOPs for exact budgets, as a markdown table for the README.

    .venv/bin/python benchmarks/budget_table.py [--method l1]

Achieved = cost-model MACs of the allocated widths / dense MACs (the cost model is checked
against MACs measured on the slim model in tests/test_graph.py and tests/test_slim.py).
"""

from __future__ import annotations

import argparse

from edgeprune.errors import BudgetError
from edgeprune.methods import get_method
from edgeprune.models import build_model
from edgeprune.pruning.budget import Budget, allocate
from edgeprune.pruning.graph import ChannelGraph

MODELS = [
    "torchvision:resnet18",
    "torchvision:resnet50",
    "torchvision:mobilenet_v2",
    "torchvision:vgg11_bn",
    "edgeprune:resnet20",
    "edgeprune:resnet56",
]
TARGETS = (0.3, 0.5, 0.7)
ALIGNS = (1, 8, 16)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--method", default="l1")
    args = parser.parse_args()
    header = "| model | dense MACs | " + " | ".join(f"flops={t} align {a}" for t in TARGETS for a in ALIGNS) + " |"
    print(header)
    print("|" + "---|" * (2 + len(TARGETS) * len(ALIGNS)))
    for spec in MODELS:
        model, shape = build_model(spec)
        graph = ChannelGraph(model, shape)
        scores = get_method(args.method).scores(model, graph)
        dense = graph.cost.dense("flops")
        cells = []
        for target in TARGETS:
            for align in ALIGNS:
                try:
                    widths = allocate(graph.cost, scores, Budget("flops", target), align)
                except BudgetError:
                    cells.append("infeasible")
                    continue
                achieved = graph.cost.flops(widths) / dense
                mark = "" if 0.99 * target <= achieved <= target else " *"
                cells.append(f"{achieved:.4f}{mark}")
        print(f"| {spec} | {dense / 1e6:.1f}M | " + " | ".join(cells) + " |")
    print("\n`*`: outside [0.99, 1.0] x target (only where alignment steps are coarse for narrow groups).")


if __name__ == "__main__":
    main()
