"""Han et al. 2015: iterative magnitude pruning of single weights to a sparsity target with
retraining; the dense architecture with zeros, exported with parity, resumed exactly."""

import json

import pytest
import torch
from click.testing import CliRunner

from edgeprune.cli import main
from edgeprune.data.fashion_mnist import DEFAULT_ROOT, FILES
from edgeprune.errors import BudgetError, MethodError
from edgeprune.methods import get_method
from edgeprune.methods.han import HanConfig, schedule
from edgeprune.pruning.budget import Budget
from edgeprune.pruning.request import PruneRequest
from edgeprune.pruning.sparsity import prunable_weights

REAL = all((DEFAULT_ROOT / name).is_file() for pair in FILES.values() for name in pair)
TINY = ["--data", "fashion-mnist", "--train-subset", "96", "--test-subset", "32", "--batch-size", "32",
        "--no-progress"]
needs_data = pytest.mark.skipif(not REAL, reason="needs Debian's dataset-fashion-mnist (real images)")


@pytest.fixture(scope="module")
def dense_weights(tmp_path_factory):
    from edgeprune.models import build_model

    torch.manual_seed(0)
    model, _ = build_model("edgeprune:resnet20")
    path = tmp_path_factory.mktemp("dense") / "model.pt"
    torch.save(model.state_dict(), path)
    return path


def _prune(out, *extra, weights):
    return CliRunner().invoke(main, ["prune", "edgeprune:resnet20", "--method", "han", "--budget", "sparsity=0.9",
                                     *TINY, "--weights", str(weights), "--out", str(out), *extra])


def _report(out):
    report = json.loads((out / "report.json").read_text())
    report.pop("elapsed_s")
    return report


def test_config_schedule_and_budget():
    config = get_method("han", steps=2, scope="layer").config
    assert HanConfig(**json.loads(json.dumps(config.to_json()))) == config
    with pytest.raises(MethodError, match="han: scope must be one of global, layer"):
        get_method("han", scope="row")
    assert schedule(0.9, 3, 30) == [(0, 0.3), (10, 0.6), (20, 0.9)]
    assert schedule(0.9, 3, 2) == [(0, 0.45), (1, 0.9)]
    assert str(Budget.parse("sparsity=0.9")) == "sparsity=0.9" == str(Budget("sparsity", 0.9, 0.5))
    with pytest.raises(BudgetError, match="sparsity must be in"):
        Budget.parse("sparsity=1.0")


def test_sparsity_budget_only_with_han(tmp_path):
    def problems(**values):
        return dict(PruneRequest.build(model="edgeprune:resnet20", out=str(tmp_path / "o"), data="fashion-mnist",
                                       **values).problems())

    assert problems(method="han", budget="sparsity=0.9", epochs=1) == {}
    assert "only an unstructured method" in problems(method="l1", budget="sparsity=0.9")["budget"]
    assert "only an unstructured method" in problems(method="sfp", budget="sparsity=0.9", epochs=1)["budget"]
    assert "use sparsity=S" in problems(method="han", budget="flops=0.5", epochs=1)["budget"]
    assert "epochs" in problems(method="han", budget="sparsity=0.9")
    run = CliRunner().invoke(main, ["prune", "edgeprune:resnet20", "--budget", "sparsity=0.5", "--out",
                                    str(tmp_path / "o")])
    assert run.exit_code == 2 and "--budget: sparsity= zeroes single weights" in run.output


@pytest.mark.parametrize("scope", ["global", "layer"])
def test_masks_reach_the_target_and_only_grow(resnet20, scope):
    model, _ = resnet20
    han = get_method("han", scope=scope)
    han.attach(model, 0.9)
    han.prune_to(0.5)
    first = [m.clone() for m in han.masks]
    han.prune_to(0.9)
    assert all(torch.all(b <= a) for a, b in zip(first, han.masks))  # pruned stays pruned
    assert abs(han.sparsity() - 0.9) < 1e-4
    if scope == "layer":
        assert all(abs(float((~m).float().mean()) - 0.9) < 0.01 for m in han.masks)


@needs_data
def test_cli_reaches_the_sparsity_masks_hold_and_exports_with_parity(dense_weights, tmp_path):
    out = tmp_path / "han"
    result = _prune(out, "--epochs", "2", "--option", "steps=2", weights=dense_weights)
    assert result.exit_code == 0, result.output
    assert "no latency" in result.output or "dense model's latency" in result.output
    r = _report(out)
    sizes = r["sizes"]
    print(f"\nhan: sparsity {r['sparsity']:.4f}; bytes dense {sizes['dense']['dense']} -> bitmask "
          f"{sizes['pruned']['bitmask']}, csr {sizes['pruned']['csr']}; zipped model.pt "
          f"{sizes['dense']['model_pt_zipped']} -> {sizes['pruned']['model_pt_zipped']}; accuracy {r['accuracy']:.3f}")
    assert abs(r["sparsity"] - 0.9) <= 0.005 and r["method"] == "han" and r["target_sparsity"] == 0.9
    assert r["flops_ratio"] == 1.0 and r["params_ratio"] == 1.0 and "latency" in r["latency_note"]
    assert sizes["pruned"]["bitmask"] < 0.2 * sizes["dense"]["dense"]
    assert sizes["pruned"]["model_pt_zipped"] < 0.5 * sizes["dense"]["model_pt_zipped"]
    assert [e["sparsity"] for e in r["han"]["schedule"]] == [0.45, 0.9] and len(r["han"]["sparsity_per_epoch"]) == 2
    # the masks hold: every weight the final masks prune is zero in model.pt, after a whole epoch of retraining
    state = torch.load(out / "model.pt", weights_only=True)
    masks = torch.load(out / "checkpoint.pt", weights_only=True)["method"]["masks"]
    from edgeprune.models import build_model

    model, _ = build_model("edgeprune:resnet20")
    names = [name for name, _ in prunable_weights(model)]
    assert len(names) == len(masks)
    for name, mask in zip(names, masks):
        w = state[f"{name}.weight"]
        assert torch.all(w[~mask] == 0) and torch.count_nonzero(w[mask]) > 0.99 * int(mask.sum())
    exported = CliRunner().invoke(main, ["export", str(out), "--format", "onnx", "--format", "openvino",
                                         "--out", str(tmp_path / "export")])
    assert exported.exit_code == 0, exported.output
    parity = json.loads((tmp_path / "export" / "export.json").read_text())["parity"]
    print("export parity", {k: p["rel_diff"] for k, p in parity.items()})
    assert set(parity) == {"ort", "openvino"} and all(p["rel_diff"] <= 1e-4 for p in parity.values())


@needs_data
def test_resume_gives_identical_weights(dense_weights, tmp_path):
    args = ["--epochs", "2", "--option", "steps=2"]
    assert _prune(tmp_path / "full", *args, weights=dense_weights).exit_code == 0
    stopped = _prune(tmp_path / "res", *args, "--stop-after", "1", weights=dense_weights)
    assert stopped.exit_code == 0 and "continue with --resume" in stopped.output
    resumed = _prune(tmp_path / "res", *args, "--resume", weights=dense_weights)
    assert resumed.exit_code == 0, resumed.output
    a = torch.load(tmp_path / "full" / "model.pt", weights_only=True)
    b = torch.load(tmp_path / "res" / "model.pt", weights_only=True)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert _report(tmp_path / "full") == _report(tmp_path / "res")
