"""Network Slimming: L1 sparsity on BatchNorm scales while training, then |gamma| selection
through the allocator under the exact budget; resumable; exports with parity."""

import json

import pytest
import torch
from click.testing import CliRunner
from ddp_helpers import two_process_run

from edgeprune.cli import main
from edgeprune.data.fashion_mnist import DEFAULT_ROOT, FILES
from edgeprune.errors import MethodError
from edgeprune.methods import get_method
from edgeprune.methods.slimming import SlimmingConfig
from edgeprune.pruning.budget import Budget

REAL = all((DEFAULT_ROOT / name).is_file() for pair in FILES.values() for name in pair)
TINY = ["--data", "fashion-mnist", "--train-subset", "128", "--test-subset", "64", "--batch-size", "32",
        "--align", "1", "--no-progress"]
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
    return CliRunner().invoke(main, ["prune", "edgeprune:resnet20", "--method", "slimming", *TINY, "--weights",
                                     str(weights), "--lr", "0.1", "--out", str(out), *extra])


def _report(out):
    report = json.loads((out / "report.json").read_text())
    report.pop("elapsed_s")
    return report


def test_config_round_trips_and_budget_text_too():
    config = get_method("slimming", sparsity=1e-3).config
    assert SlimmingConfig(**json.loads(json.dumps(config.to_json()))) == config
    assert get_method("slimming").config.sparsity == 1e-4 and get_method("slimming").training_time
    with pytest.raises(MethodError, match="sparsity must be a number >= 0"):
        get_method("slimming", sparsity=-1.0)
    for budget in (Budget.parse("flops=0.5"), Budget("params", 0.3, 0.1), Budget.parse("ratio=0.25")):
        assert Budget.from_text(str(budget)) == budget


@needs_data
def test_sparsity_shrinks_gammas_and_the_result_meets_the_budget_and_exports(dense_weights, tmp_path):
    args = ["--budget", "flops=0.5", "--epochs", "1"]
    plain = _prune(tmp_path / "plain", *args, "--option", "sparsity=0", weights=dense_weights)
    sparse = _prune(tmp_path / "sparse", *args, "--option", "sparsity=0.05", weights=dense_weights)
    assert plain.exit_code == 0 and sparse.exit_code == 0, plain.output + sparse.output
    a, b = _report(tmp_path / "plain"), _report(tmp_path / "sparse")
    print(f"\ngamma L1: sparsity 0 -> {a['slimming']['gamma_l1']:.2f}, 0.05 -> {b['slimming']['gamma_l1']:.2f}; "
          f"flops_ratio {b['flops_ratio']:.4f}, parity {b['parity_rel_diff']:.2e}")
    assert b["slimming"]["gamma_l1"] < a["slimming"]["gamma_l1"] - 1.0
    metrics = json.loads((tmp_path / "sparse" / "metrics.json").read_text())
    assert metrics["epochs"][0]["slimming_gamma_l1"] == b["slimming"]["gamma_l1_per_epoch"][0]
    assert metrics["method_options"] == {"sparsity": 0.05}
    for r in (a, b):
        assert r["method"] == "slimming" and 0.99 * 0.5 <= r["flops_ratio"] <= 0.5 and r["parity_rel_diff"] < 1e-4
        assert [g["kept"] for g in r["groups"]] == r["slimming"]["final_widths"]
    run = CliRunner()
    exported = run.invoke(main, ["export", str(tmp_path / "sparse"), "--format", "onnx", "--format", "openvino",
                                 "--out", str(tmp_path / "export")])
    assert exported.exit_code == 0, exported.output
    parity = json.loads((tmp_path / "export" / "export.json").read_text())["parity"]
    print("export parity", {k: p["rel_diff"] for k, p in parity.items()})
    assert set(parity) == {"ort", "openvino"} and all(p["rel_diff"] <= 1e-4 for p in parity.values())


@needs_data
def test_resume_gives_the_same_plan_weights_and_report(dense_weights, tmp_path):
    args = ["--budget", "flops=0.5", "--epochs", "2", "--option", "sparsity=0.01"]
    assert _prune(tmp_path / "full", *args, weights=dense_weights).exit_code == 0
    stopped = _prune(tmp_path / "res", *args, "--stop-after", "1", weights=dense_weights)
    assert stopped.exit_code == 0 and "continue with --resume" in stopped.output
    resumed = _prune(tmp_path / "res", *args, "--resume", weights=dense_weights)
    assert resumed.exit_code == 0, resumed.output
    assert (tmp_path / "full" / "plan.json").read_text() == (tmp_path / "res" / "plan.json").read_text()
    assert _report(tmp_path / "full") == _report(tmp_path / "res")
    assert len(_report(tmp_path / "res")["slimming"]["gamma_l1_per_epoch"]) == 2
    a = torch.load(tmp_path / "full" / "model.pt", weights_only=True)
    b = torch.load(tmp_path / "res" / "model.pt", weights_only=True)
    assert all(torch.equal(a[k], b[k]) for k in a)
    other = _prune(tmp_path / "res", "--budget", "flops=0.5", "--epochs", "2", "--option", "sparsity=0.02",
                   "--resume", weights=dense_weights)
    assert other.exit_code != 0 and "Traceback" not in other.output


@pytest.mark.slow
@needs_data
def test_two_process_gloo_run_ends_with_identical_gammas_and_plans(tmp_path):
    r0, r1, report = two_process_run(tmp_path, {"gamma_l1": ("slimming", "gamma_l1")}, method="slimming",
                                     options=(("sparsity", 0.01),), train_subset=128, test_subset=64, epochs=1)
    assert r0["kept"] == r1["kept"] and r0["gamma_l1"] == r1["gamma_l1"]
    assert all(torch.equal(r0["weights"][k], r1["weights"][k]) for k in r0["weights"])
    assert 0.99 * 0.5 <= report["flops_ratio"] <= 0.5
