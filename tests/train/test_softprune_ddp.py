"""Two gloo processes (spawned here, as torchrun would start them) train SFP / CR-SFP together
and end with identical masks, weights (and CR-SFP's extra head) on both ranks."""

import json

import pytest
import torch
import torch.multiprocessing as mp


def _worker(rank: int, world: int, init: str, root: str, out: str, method: str) -> None:
    import torch.distributed as dist

    from edgeprune.methods.sfp import SoftMaskBase
    from edgeprune.pruning.job import run_prune
    from edgeprune.pruning.request import PruneRequest
    from edgeprune.train.distributed import current

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=init, rank=rank, world_size=world)
    try:
        captured = {"masks": []}
        reselect = SoftMaskBase._reselect

        def record(self):  # every epoch's selection, on every rank
            regrown = reselect(self)
            captured["masks"].append(torch.cat(self.masks))
            return regrown

        SoftMaskBase._reselect = record
        request = PruneRequest(model="edgeprune:resnet20", budget="flops=0.5", out=out, method=method, align=1,
                               data="fashion-mnist", data_root=root, train_subset=128, test_subset=64,
                               epochs=2, batch_size=16, lr=0.05)
        result = run_prune(request, progress=False, dist=current())
        head = {}
        if method == "crsfp":
            head = {"r_head": result.report["crsfp"]["r_head_params"]}
        torch.save({**captured, **head, "kept": result.plan.to_json()["groups"], "accuracy": result.report["accuracy"],
                    "weights": {k: v.clone() for k, v in result.model.state_dict().items()}},
                   f"{out}/rank{rank}.pt")
    finally:
        dist.destroy_process_group()


@pytest.mark.slow
@pytest.mark.parametrize("method", ["sfp", "crsfp"])
def test_two_process_gloo_run_ends_with_identical_masks(fake_root, tmp_path, method):
    out = tmp_path / "ddp"
    out.mkdir()
    init = f"file://{tmp_path / 'rendezvous'}"
    mp.spawn(_worker, args=(2, init, str(fake_root), str(out), method), nprocs=2, join=True)
    r0, r1 = (torch.load(out / f"rank{r}.pt", weights_only=True) for r in range(2))
    assert len(r0["masks"]) == 2  # one selection per epoch
    assert all(torch.equal(a, b) for a, b in zip(r0["masks"], r1["masks"]))
    assert r0["kept"] == r1["kept"]
    assert all(torch.equal(r0["weights"][k], r1["weights"][k]) for k in r0["weights"])
    assert r0["accuracy"] == r1["accuracy"]
    metrics = json.loads((out / "metrics.json").read_text())
    assert len(metrics["epochs"]) == 2 and f"{method}_regrown" in metrics["epochs"][0]
    report = json.loads((out / "report.json").read_text())  # written once, by rank 0
    assert report["method"] == method and report["flops_ratio"] <= 0.5
