"""Sparse Structure Selection: APG on per-block factors drives small ones to exactly 0; the
prune job removes whole residual blocks (then channels) to the exact budget with masked ==
slim, the folder exports with parity and resumes exactly; bad removed_blocks are refused."""

import copy
import json

import pytest
import torch
from click.testing import CliRunner
from data_helpers import fake_fashion_mnist

from edgeprune.cli import main
from edgeprune.data.fashion_mnist import DEFAULT_ROOT, FILES
from edgeprune.errors import MethodError, PlanError
from edgeprune.methods import get_method
from edgeprune.methods.sss import SSSConfig, apg_step
from edgeprune.pruning.depth import block_params, find_blocks, remove_blocks, without_blocks
from edgeprune.pruning.graph import ChannelGraph, count_flops_params
from edgeprune.pruning.plan import PruningPlan

REAL = all((DEFAULT_ROOT / name).is_file() for pair in FILES.values() for name in pair)
TINY = ["--data", "fashion-mnist", "--train-subset", "64", "--test-subset", "32", "--batch-size", "32",
        "--align", "1", "--no-progress", "--lr", "0.1"]
ARGS = ["--budget", "flops=0.5", "--epochs", "2"]


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """Random dense weights, and the data root (real Fashion-MNIST if installed, else fake)."""
    from edgeprune.models import build_model

    torch.manual_seed(0)
    model, _ = build_model("edgeprune:resnet20")
    base = tmp_path_factory.mktemp("sss")
    torch.save(model.state_dict(), base / "dense.pt")
    root = [] if REAL else ["--data-root", str(fake_fashion_mnist(base / "fmnist", 64, 32))]
    return base, ["--weights", str(base / "dense.pt"), *root]


def _prune(out, setup, *extra):
    return CliRunner().invoke(main, ["prune", "edgeprune:resnet20", "--method", "sss", *TINY, *setup[1],
                                     "--out", str(out), *extra])


@pytest.fixture(scope="module")
def full(setup):
    out = setup[0] / "full"
    result = _prune(out, setup, *ARGS)
    assert result.exit_code == 0, result.output
    (setup[0] / "full_output.txt").write_text(result.output)
    return out


def _report(out):
    report = json.loads((out / "report.json").read_text())
    report.pop("elapsed_s")
    return report


def test_apg_step_drives_small_factors_to_exactly_zero():
    # loss 0.5 |lambda - t|^2 + gamma |lambda|_1: the minimum is the soft threshold of t
    target = torch.tensor([0.005, -0.003, 0.5, -0.8])
    factors, velocity = torch.ones(4), torch.zeros(4)
    for _ in range(300):
        apg_step(factors, factors - target, velocity, lr=0.1, gamma=0.01, momentum=0.9)
    assert factors[0].item() == 0.0 and factors[1].item() == 0.0  # exactly, not merely small
    assert torch.allclose(factors[2:], torch.tensor([0.49, -0.79]), atol=1e-5)


def test_config_round_trips_and_bad_options_are_named():
    config = get_method("sss", sparsity=0.02, momentum=0.5).config
    assert SSSConfig(**json.loads(json.dumps(config.to_json()))) == config
    assert get_method("sss").config == SSSConfig(1e-2, 0.9) and get_method("sss").training_time
    with pytest.raises(MethodError, match="sparsity must be a number >= 0"):
        get_method("sss", sparsity=-1.0)
    with pytest.raises(MethodError, match="momentum must be below 1"):
        get_method("sss", momentum=1.0)


def test_factors_keep_state_dict_names_and_fold_into_the_last_batchnorm(resnet20):
    model, shape = resnet20
    keys = list(model.state_dict())
    method = get_method("sss")
    method.attach(model, None, [], None)  # the graph and widths matter only at the end
    assert method.blocks == ["layer1.0", "layer1.1", "layer1.2", "layer2.1", "layer2.2", "layer3.1", "layer3.2"]
    assert list(model.state_dict()) == keys
    with torch.no_grad():
        method.factors.copy_(torch.tensor([0.5, 0.0, 1.5, -0.3, 2.0, 0.0, 0.7]))
    x = torch.randn(2, *shape[1:])
    model.eval()
    with torch.no_grad():
        scaled = model(x)
    with torch.no_grad():
        for f, bn in zip(method.factors, method._bns):
            bn.weight.mul_(f)
            bn.bias.mul_(f)
    method._remove_hooks()
    with torch.no_grad():
        assert torch.allclose(model(x), scaled, atol=1e-5)


def test_cost_without_blocks_matches_the_measured_model(resnet20):
    model, shape = resnet20
    graph = ChannelGraph(model, shape)
    names = ["layer1.1", "layer3.2"]
    cost = without_blocks(graph.cost, names, block_params(model, names))
    smaller = copy.deepcopy(model)
    remove_blocks(smaller, names)
    assert (cost.dense("flops"), cost.dense("params")) == count_flops_params(smaller, shape)
    assert [b.name for b in find_blocks(model) if not b.identity] == ["layer2.0", "layer3.0"]


def test_prune_removes_blocks_and_meets_the_budget_with_parity(full):
    report = _report(full)
    plan = PruningPlan.load(full / "plan.json")
    print(f"\nremoved {report['removed_blocks']}, flops_ratio {report['flops_ratio']:.4f}, "
          f"parity {report['parity_max_abs_diff']:.2e}, factors {report['sss']['factors']}")
    assert len(report["removed_blocks"]) >= 1 and list(plan.removed_blocks) == report["removed_blocks"]
    assert report["sss"]["removed_blocks"] == report["removed_blocks"]
    assert 0.99 * 0.5 <= report["flops_ratio"] <= 0.5 and report["warnings"] == []
    assert report["parity_max_abs_diff"] <= 1e-4
    assert [g["kept"] for g in report["groups"]] == report["sss"]["final_widths"]
    metrics = json.loads((full / "metrics.json").read_text())
    assert metrics["epochs"][-1]["sss_factor_l1"] == report["sss"]["factor_l1_per_epoch"][-1]
    from edgeprune.models.saved import load_saved

    saved = load_saved(full)  # the slim architecture is rebuilt from the plan, removed blocks included
    for name in report["removed_blocks"]:
        assert isinstance(saved.model.get_submodule(name), torch.nn.Identity)
    assert count_flops_params(saved.model, plan.input_shape)[0] == report["flops_pruned"]
    console = (full.parent / "full_output.txt").read_text()  # the summary names what went
    assert f"{len(report['removed_blocks'])} residual blocks removed (each now its shortcut): " \
        f"{', '.join(report['removed_blocks'])}" in console


def test_the_prune_folder_exports_to_onnx_with_parity(full, tmp_path):
    exported = CliRunner().invoke(main, ["export", str(full), "--format", "onnx", "--out", str(tmp_path / "export")])
    assert exported.exit_code == 0, exported.output
    parity = json.loads((tmp_path / "export" / "export.json").read_text())["parity"]
    print("export parity", {k: p["rel_diff"] for k, p in parity.items()})
    assert set(parity) == {"ort"} and parity["ort"]["rel_diff"] <= 1e-4


def test_resume_gives_the_same_plan_weights_and_report(full, setup):
    out = setup[0] / "resumed"
    stopped = _prune(out, setup, *ARGS, "--stop-after", "1")
    assert stopped.exit_code == 0 and "continue with --resume" in stopped.output
    resumed = _prune(out, setup, *ARGS, "--resume")
    assert resumed.exit_code == 0, resumed.output
    assert (full / "plan.json").read_text() == (out / "plan.json").read_text()
    assert _report(full) == _report(out)
    a = torch.load(full / "model.pt", weights_only=True)
    b = torch.load(out / "model.pt", weights_only=True)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_bad_removed_blocks_are_refused_naming_the_field(full):
    from edgeprune.models import build_model
    from edgeprune.pruning.slim import slim

    data = json.loads((full / "plan.json").read_text())
    dense, _ = build_model("edgeprune:resnet20")
    for bad, message in ((["layer9.9"], r"removed_blocks\[0\] 'layer9.9' is not a module"),
                         (["layer1.1", "layer1.0.conv1"], r"removed_blocks\[1\] 'layer1.0.conv1' is a Conv2d, "
                                                          "not a residual block"),
                         (["layer2.0"], r"removed_blocks\[0\] 'layer2.0' has a downsampling shortcut")):
        plan = PruningPlan.from_json({**data, "removed_blocks": bad})
        with pytest.raises(PlanError, match=message):
            slim(dense, plan)
    for bad in ("layer1.1", [3], ["layer1.1", "layer1.1"]):
        with pytest.raises(PlanError, match="'removed_blocks'"):
            PruningPlan.from_json({**data, "removed_blocks": bad})
    old = {k: v for k, v in data.items() if k != "removed_blocks"}
    assert PruningPlan.from_json(old).removed_blocks == ()  # plans without the field still load
