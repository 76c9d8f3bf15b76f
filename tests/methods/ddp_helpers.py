"""One prune request run as two gloo processes (import as `from ddp_helpers import ...`): what
the DDP tests of the training-time methods compare between the ranks."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def _worker(rank: int, world: int, init: str, out: str, fields: dict[str, Any],
            saved: dict[str, tuple[str, ...]]) -> None:
    import torch
    import torch.distributed as dist

    from edgeprune.pruning.job import run_prune
    from edgeprune.pruning.request import PruneRequest
    from edgeprune.train.distributed import current

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=init, rank=rank, world_size=world)
    try:
        request = PruneRequest(model="edgeprune:resnet20", budget="flops=0.5", out=out, align=1,
                               data="fashion-mnist", batch_size=16, lr=0.05, **fields)
        result = run_prune(request, progress=False, dist=current())
        record = {"kept": result.plan.to_json()["groups"],
                  "weights": {k: v.clone() for k, v in result.model.state_dict().items()}}
        for name, keys in saved.items():  # report fields by path, e.g. ("resrep", "round_widths")
            value = result.report
            for key in keys:
                value = value[key]
            record[name] = value
        torch.save(record, f"{out}/rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def two_process_run(tmp: Path, saved: dict[str, tuple[str, ...]], **fields: Any):
    """Run `PruneRequest(**fields)` (resnet20, flops=0.5, align 1, Fashion-MNIST, batch 16 per
    rank, lr 0.05 unless given) on 2 gloo ranks; return each rank's record (kept channels, slim
    weights, the report fields named in ``saved``) and rank 0's report.json."""
    import torch
    import torch.multiprocessing as mp

    out = tmp / "ddp"
    out.mkdir()
    mp.spawn(_worker, args=(2, f"file://{tmp / 'rendezvous'}", str(out), fields, saved), nprocs=2, join=True)
    r0, r1 = (torch.load(out / f"rank{r}.pt", weights_only=True) for r in range(2))
    return r0, r1, json.loads((out / "report.json").read_text())
