"""Two gloo processes (spawned here, as torchrun would start them) train DTP together and end
with identical masks and scores on both ranks."""

import json

import pytest
import torch
import torch.multiprocessing as mp


def _worker(rank: int, world: int, init: str, root: str, out: str) -> None:
    import torch.distributed as dist

    from edgeprune.pruning.job import run_prune
    from edgeprune.pruning.request import PruneRequest
    from edgeprune.train.distributed import current

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=init, rank=rank, world_size=world)
    try:
        captured = {}
        import edgeprune.methods.dtp as dtp

        original = dtp.DTP.detach

        def capture(self):  # the masks as training left them, before slimming
            captured.update(kept=self.kept(), soft=[m.clone() for m in self.soft_masks()], score=self.score.detach().clone())
            original(self)

        dtp.DTP.detach = capture
        step = dtp.DTP._step
        per_step = []

        def record(self):  # every step's masks, before any end-of-epoch broadcast
            step(self)
            per_step.append(torch.cat([m.detach() for m in self._soft]))

        dtp.DTP._step = record
        request = PruneRequest(model="edgeprune:resnet20", budget="flops=0.5", out=out, method="dtp", align=1,
                               data="fashion-mnist", data_root=root, train_subset=128, test_subset=64,
                               epochs=1, batch_size=16, lr=0.05)
        result = run_prune(request, progress=False, dist=current())
        torch.save({**captured, "per_step": per_step, "accuracy": result.report["accuracy"],
                    "weights": {k: v.clone() for k, v in result.model.state_dict().items()}},
                   f"{out}/rank{rank}.pt")
    finally:
        dist.destroy_process_group()


@pytest.mark.slow
def test_two_process_gloo_run_ends_with_identical_masks(fake_root, tmp_path):
    out = tmp_path / "ddp"
    out.mkdir()
    init = f"file://{tmp_path / 'rendezvous'}"
    mp.spawn(_worker, args=(2, init, str(fake_root), str(out)), nprocs=2, join=True)
    r0, r1 = (torch.load(out / f"rank{r}.pt", weights_only=True) for r in range(2))
    assert len(r0["per_step"]) == 4  # 128 images / 2 ranks / batch 16
    assert all(torch.equal(a, b) for a, b in zip(r0["per_step"], r1["per_step"]))
    assert r0["kept"] == r1["kept"]
    assert all(torch.equal(a, b) for a, b in zip(r0["soft"], r1["soft"]))
    assert torch.equal(r0["score"], r1["score"])
    assert all(torch.equal(r0["weights"][k], r1["weights"][k]) for k in r0["weights"])
    assert r0["accuracy"] == r1["accuracy"]  # evaluated on both ranks' shards together
    metrics = json.loads((out / "metrics.json").read_text())
    assert len(metrics["epochs"]) == 1 and metrics["epochs"][0]["train_loss"] > 0
    report = json.loads((out / "report.json").read_text())  # written once, by rank 0
    assert report["method"] == "dtp" and report["flops_ratio"] <= 0.5
