"""Cost of an SFP and a CR-SFP training step against a plain one: resnet20, batch 128, same process.

    .venv/bin/python benchmarks/crsfp_step_cost.py [--steps 30] [--threads 1] [--budget flops=0.5]

Three copies of the same network: plain; with SFP attached (eval-mode mask hooks, which
multiply by ones while training; the zeroing itself runs once per epoch and is not in the
step); with CR-SFP attached (mask hooks, the extra head). Each step is forward + loss +
backward + SGD step, timed with perf_counter: plain and SFP one cross-entropy on one view,
CR-SFP its full objective on two views (R-NN on x1, P-NN on x2, CE + CE + lambda x symmetric
KL), i.e. two forward and two backward passes. Rounds run plain / SFP / CR-SFP in a rotating
order so that machine noise hits all alike. Prints the medians and the ratios to plain
(expected: SFP ~1x, CR-SFP ~2x).
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import time

import torch
import torch.nn.functional as F

from edgeprune.data.batches import Batch
from edgeprune.methods import get_method
from edgeprune.models import build_model
from edgeprune.pruning.budget import Budget, allocate
from edgeprune.pruning.graph import ChannelGraph


def _attach(model, shape, name, budget, **options):
    graph = ChannelGraph(model, shape)
    method = get_method(name, **options)
    scores = method.scores(model, graph)
    method.attach(model, graph, allocate(graph.cost, scores, Budget.parse(budget), 1), scores)
    return method


def _sgd(params, extra=()):
    groups = [{"params": list(params), "weight_decay": 5e-4}]
    if extra:
        groups.append({"params": list(extra), "weight_decay": 0.0})
    return torch.optim.SGD(groups, lr=0.01, momentum=0.9)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=30, help="timed steps of each kind")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    parser.add_argument("--budget", default="flops=0.5")
    parser.add_argument("--json", default=None, help="also write the result here")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    torch.manual_seed(0)
    plain, shape = build_model("edgeprune:resnet20")
    soft, cr = copy.deepcopy(plain), copy.deepcopy(plain)
    sfp = _attach(soft, shape, "sfp", args.budget)
    crsfp = _attach(cr, shape, "crsfp", args.budget, consistency_lambda=1.0)
    opts = {"plain": _sgd(plain.parameters()), "sfp": _sgd(soft.parameters()),
            "crsfp": _sgd(cr.parameters(), crsfp.parameters())}
    for m in (plain, soft, cr):
        m.train()
    g = torch.Generator().manual_seed(0)
    x1 = torch.randn(args.batch, *shape[1:], generator=g)
    x2 = torch.randn(args.batch, *shape[1:], generator=g)
    y = torch.randint(0, 10, (args.batch,), generator=g)
    batch = Batch((x1, x2), y)

    def step(kind: str) -> None:
        if kind == "plain":
            loss = F.cross_entropy(plain(x1), y)
        elif kind == "sfp":
            loss = F.cross_entropy(soft(x1), y)
        else:
            loss, _ = crsfp.loss(lambda v: crsfp.forward(cr, v), batch)
        opts[kind].zero_grad(set_to_none=True)
        loss.backward()
        opts[kind].step()

    kinds = ["plain", "sfp", "crsfp"]
    times = {k: [] for k in kinds}
    for r in range(args.warmup + args.steps):
        order = kinds[r % 3:] + kinds[: r % 3]
        for kind in order:
            start = time.perf_counter()
            step(kind)
            if r >= args.warmup:
                times[kind].append(time.perf_counter() - start)

    ms = {k: 1e3 * statistics.median(v) for k, v in times.items()}
    result = {
        "model": "edgeprune:resnet20",
        "batch": args.batch,
        "budget": args.budget,
        "threads": torch.get_num_threads(),
        "steps": args.steps,
        **{f"{k}_ms_median": round(v, 2) for k, v in ms.items()},
        "sfp_ratio": round(ms["sfp"] / ms["plain"], 4),
        "crsfp_ratio": round(ms["crsfp"] / ms["plain"], 4),
    }
    print(
        f"resnet20 batch {args.batch}, {args.budget}, {result['threads']} threads, median of {args.steps} "
        f"interleaved rounds:\n"
        f"  plain step   {ms['plain']:8.1f} ms\n"
        f"  SFP step     {ms['sfp']:8.1f} ms   ({result['sfp_ratio']:.3f}x plain)\n"
        f"  CR-SFP step  {ms['crsfp']:8.1f} ms   ({result['crsfp_ratio']:.3f}x plain; two views, two forward/backward)"
    )
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)


if __name__ == "__main__":
    main()
