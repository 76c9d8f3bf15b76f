import torch

from edgeprune.pruning.budget import Budget
from edgeprune.pruning.folder import load_pruned, save_pruned
from edgeprune.pruning.one_shot import prune_one_shot
from edgeprune.pruning.parity import compare_outputs, fixed_input


def test_save_and_load_pruned(resnet20, tmp_path):
    model, shape = resnet20
    result = prune_one_shot(model, "edgeprune:resnet20", shape, "l1", Budget.parse("flops=0.5"), 8)
    save_pruned(tmp_path, result.plan, result.model, result.report)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["manifest.json", "model.pt", "plan.json", "report.json"]
    loaded, plan, report = load_pruned(tmp_path)
    assert plan == result.plan and report["method"] == "l1"
    assert compare_outputs(result.model, loaded, fixed_input(shape)).max_abs_diff == 0
    # the weights file is a plain state_dict that loads without unpickling code
    state = torch.load(tmp_path / "model.pt", weights_only=True)
    assert state["conv1.weight"].shape[0] == len(plan.groups[[g.root for g in plan.groups].index("conv1")].kept)


def test_the_same_weights_give_the_same_bytes(resnet20, tmp_path):
    """Artifacts are byte-reproducible (torch.save would name its zip records after the random
    temporary file), so a re-run's hashes, and the pipeline's stage keys, stay the same."""
    from edgeprune.files.atomic import save_torch

    model, _ = resnet20
    a, b = save_torch(tmp_path / "a" / "model.pt", model.state_dict()), save_torch(tmp_path / "b.pt", model.state_dict())
    assert a.read_bytes() == b.read_bytes()
