"""Cost of a DTP training step against a plain one: resnet20, batch 128, same process.

    .venv/bin/python benchmarks/dtp_overhead.py [--steps 60] [--threads 1] [--budget flops=0.5]

Two copies of the same network: one plain, one with DTP attached (mask hooks on every
pruned group's producers, one Sinkhorn iteration and the eps bisection per step, the scores
in the optimizer). Steps alternate plain / DTP / plain / ... so that machine noise hits both
alike; each step is forward + cross-entropy + backward + SGD step, timed with perf_counter.
Prints the median of each and their ratio (target <= 1.15), plus the DTP bookkeeping
(Sinkhorn + bisection) alone.
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import time

import torch
import torch.nn.functional as F

from edgeprune.methods import get_method
from edgeprune.models import build_model
from edgeprune.pruning.budget import Budget, allocate
from edgeprune.pruning.graph import ChannelGraph


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=60, help="timed steps of each kind")
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    parser.add_argument("--budget", default="flops=0.5")
    parser.add_argument("--json", default=None, help="also write the result here")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    torch.manual_seed(0)
    plain, shape = build_model("edgeprune:resnet20")
    masked = copy.deepcopy(plain)
    graph = ChannelGraph(masked, shape)
    dtp = get_method("dtp")
    scores = dtp.scores(masked, graph)
    widths = allocate(graph.cost, scores, Budget.parse(args.budget), 1)
    dtp.attach(masked, graph, widths, scores)
    total = args.warmup + args.steps
    opt_plain = torch.optim.SGD(plain.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    opt_dtp = torch.optim.SGD(
        [{"params": list(masked.parameters()), "weight_decay": 5e-4}, {"params": dtp.parameters(), "weight_decay": 0.0}],
        lr=0.01, momentum=0.9,
    )
    plain.train()
    masked.train()
    g = torch.Generator().manual_seed(0)
    x = torch.randn(args.batch, *shape[1:], generator=g)
    y = torch.randint(0, 10, (args.batch,), generator=g)

    def plain_step() -> None:
        loss = F.cross_entropy(plain(x), y)
        opt_plain.zero_grad(set_to_none=True)
        loss.backward()
        opt_plain.step()

    def dtp_step(step: int) -> None:
        dtp.on_step_start(step, 10 * total)  # stay before anneal_end: the soft-mask path
        dtp.before_forward()
        loss = F.cross_entropy(masked(x), y)
        opt_dtp.zero_grad(set_to_none=True)
        loss.backward()
        opt_dtp.step()

    times = {"plain": [], "dtp": []}
    for step in range(total):
        for kind in ("plain", "dtp") if step % 2 == 0 else ("dtp", "plain"):
            start = time.perf_counter()
            plain_step() if kind == "plain" else dtp_step(step)
            if step >= args.warmup:
                times[kind].append(time.perf_counter() - start)
    bookkeeping = []
    for step in range(50):
        start = time.perf_counter()
        dtp.on_step_start(step, 10 * total)
        dtp.before_forward()
        bookkeeping.append(time.perf_counter() - start)

    plain_ms = 1e3 * statistics.median(times["plain"])
    dtp_ms = 1e3 * statistics.median(times["dtp"])
    result = {
        "model": "edgeprune:resnet20",
        "batch": args.batch,
        "budget": args.budget,
        "pruned_groups": len(dtp.groups),
        "threads": torch.get_num_threads(),
        "steps": args.steps,
        "plain_ms_median": round(plain_ms, 2),
        "dtp_ms_median": round(dtp_ms, 2),
        "ratio": round(dtp_ms / plain_ms, 4),
        "sinkhorn_and_eps_ms_median": round(1e3 * statistics.median(bookkeeping), 3),
    }
    print(
        f"resnet20 batch {args.batch}, {args.budget} ({result['pruned_groups']} groups masked), "
        f"{result['threads']} threads, median of {args.steps} interleaved steps:\n"
        f"  plain step {plain_ms:8.1f} ms\n  DTP step   {dtp_ms:8.1f} ms\n"
        f"  ratio      {dtp_ms / plain_ms:8.3f}x   (target <= 1.15)\n"
        f"  of which Sinkhorn iteration + eps bisection: {result['sinkhorn_and_eps_ms_median']:.2f} ms"
    )
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)


if __name__ == "__main__":
    main()
