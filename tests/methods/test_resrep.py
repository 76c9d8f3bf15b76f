"""ResRep: compactors (full after a conv-BN, diagonal on coupled groups) trained with gradient
resetting, progressive selection to the exact budget, merged exactly into the original
architecture; through the CLI with export parity and exact resume, on resnet20 and on
torchvision resnet18 / mobilenet_v2."""

import copy
import json

import pytest
import torch
from click.testing import CliRunner
from ddp_helpers import two_process_run
from torchvision_helpers import foolbox_folder

from edgeprune.cli import main
from edgeprune.data.fashion_mnist import DEFAULT_ROOT, FILES
from edgeprune.errors import MethodError
from edgeprune.methods import get_method
from edgeprune.methods.resrep import ResRepConfig
from edgeprune.pruning.budget import WINDOW
from edgeprune.pruning.graph import ChannelGraph

REAL = all((DEFAULT_ROOT / name).is_file() for pair in FILES.values() for name in pair)
TINY = ["--data", "fashion-mnist", "--train-subset", "128", "--test-subset", "64", "--batch-size", "32",
        "--align", "1", "--no-progress"]
needs_data = pytest.mark.skipif(not REAL, reason="needs Debian's dataset-fashion-mnist (real images)")


def _attached(spec="edgeprune:resnet20", shape=None, seed=0):
    from edgeprune.models import build_model

    torch.manual_seed(seed)
    model, shape = build_model(spec, shape)
    with torch.no_grad():  # BN statistics and affine parameters that are not the identity
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.2)
    graph = ChannelGraph(model, shape)
    method = get_method("resrep")
    method.attach(model, graph, [g.size for g in graph.prunable], None)
    return model, graph, method, shape


def test_config_round_trips_and_bad_options_are_named():
    config = get_method("resrep", lasso=0.5, rounds=4).config
    assert ResRepConfig(**json.loads(json.dumps(config.to_json()))) == config
    assert get_method("resrep").config.lasso == "auto"
    for bad, message in (({"lasso": -1}, "lasso must be"), ({"lasso": "big"}, "lasso must be"),
                         ({"rounds": 0}, "rounds must be a positive integer"), ({"begin": 1.0}, "begin must be"),
                         ({"begin": 0.5, "end": 0.2}, "must not come after end"), ({"settle": 0.2}, "settle must be")):
        with pytest.raises(MethodError, match=message):
            get_method("resrep", **bad)


@pytest.mark.parametrize("spec,shape", [("edgeprune:resnet20", None), ("torchvision:mobilenet_v2", (1, 3, 64, 64)),
                                        ("torchvision:resnet18", (1, 3, 64, 64))])
def test_merge_is_exact(spec, shape):
    """Random compactors (forgotten rows zeroed) merged into conv-BN: the merged plain model
    computes what the compactor model computes, to 1e-5 relative."""
    model, graph, method, shape = _attached(spec, shape)
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for c in method.compactors:
            n = c.param.shape[0]
            c.param.add_(0.3 * torch.randn(c.param.shape, generator=gen))
            c.forgotten = torch.rand(n, generator=gen) < 0.4
    assert {c.full for c in method.compactors} == {True, False}  # both kinds are exercised
    model.eval()
    x = torch.randn(3, *shape[1:], generator=gen)
    with torch.no_grad():
        for c in method.compactors:
            c.param[c.forgotten] = 0.0
        reference = model(x)
    method.rounds_done = method.config.rounds  # as after training
    kept = method.kept()
    with torch.no_grad():
        merged = model(x)  # hooks gone: the plain model
    rel = float((merged - reference).abs().max() / reference.abs().max())
    report = method.report()
    print(f"\n{spec}: merged vs compactor model {rel:.2e} (report {report['merge_rel_diff']:.2e}), "
          f"compactors {report['compactors']}")
    assert rel <= 1e-5 and report["merge_rel_diff"] <= 1e-5
    assert method._handles == []  # every hook removed
    assert [len(k) for k in kept] == [int((~c.forgotten).sum()) for c in method.compactors]


def test_gradient_resetting_forgotten_rows_get_only_the_penalty_kept_rows_only_the_task():
    model, graph, method, shape = _attached()
    full = next(c for c in method.compactors if c.full)
    diag = next(c for c in method.compactors if not c.full)
    gen = torch.Generator().manual_seed(2)
    with torch.no_grad():
        for c in method.compactors:
            c.param.add_(0.1 * torch.randn(c.param.shape, generator=gen))
    for c in (full, diag):
        c.forgotten = torch.zeros(c.param.shape[0], dtype=torch.bool)
        c.forgotten[::3] = True
    x = torch.randn(8, *shape[1:], generator=gen)
    y = torch.randint(0, 10, (8,), generator=gen)

    def grads(lasso):
        for c in method.compactors:
            c.strength = torch.where(c.forgotten, lasso, 0.0)
            c.param.grad = None
        loss = torch.nn.functional.cross_entropy(model(x), y)
        method.on_step(loss).backward()
        return {id(c): c.param.grad.clone() for c in (full, diag)}

    model.train()
    state = copy.deepcopy(model.state_dict())
    task = grads(0.0)
    model.load_state_dict(state)  # the same BN statistics for the second pass
    both = grads(0.7)
    for c in (full, diag):
        f, k = c.forgotten, ~c.forgotten
        assert torch.equal(both[id(c)][k], task[id(c)][k])  # the penalty leaves the kept rows alone
        assert torch.count_nonzero(task[id(c)][f]) == 0  # no task gradient on forgotten rows
        q = c.param.detach()[f]
        expect = 0.7 * (q / q.norm(dim=1, keepdim=True) if c.full else q.sign())
        assert torch.allclose(both[id(c)][f], expect, atol=1e-6)
        assert torch.count_nonzero(task[id(c)][k]) > 0


def _prune(out, *extra, model="edgeprune:resnet20", data=TINY):
    return CliRunner().invoke(main, ["prune", model, "--method", "resrep", "--budget", "flops=0.5", *data,
                                     "--out", str(out), *extra])


def _report(out):
    report = json.loads((out / "report.json").read_text())
    report.pop("elapsed_s")
    return report


@needs_data
def test_forgotten_rows_go_to_zero_the_budget_is_met_and_the_folder_exports(tmp_path):
    run = _prune(tmp_path / "r", "--epochs", "4", "--batch-size", "16")  # 32 steps
    assert run.exit_code == 0, run.output
    r = _report(tmp_path / "r")
    rr = r["resrep"]
    norms = [e["resrep_forgotten_norm"] for e in rr["per_epoch"]]
    print(f"\nflops {r['flops_ratio']:.4f}, forgotten row norm per epoch {norms}, lasso max {rr['lasso_max']:.3g}, "
          f"merge {rr['merge_rel_diff']:.2e}, masked vs slim {r['parity_rel_diff']:.2e}")
    assert WINDOW * 0.5 <= r["flops_ratio"] <= 0.5 and r["warnings"] == []
    assert rr["final_widths"] == [g["kept"] for g in r["groups"]] == rr["round_widths"][-1]
    assert norms[-1] < 0.25 * norms[1] and rr["forgotten_norm_max"] == norms[-1]  # identity rows start at 1
    last = rr["per_epoch"][-1]
    assert last["resrep_at_zero"] > 0 and norms[-1] == 0.0  # arrived rows are held at exactly 0
    assert rr["merge_rel_diff"] <= 1e-5 and r["parity_rel_diff"] <= 1e-4
    exported = CliRunner().invoke(main, ["export", str(tmp_path / "r"), "--format", "onnx",
                                         "--out", str(tmp_path / "export")])
    assert exported.exit_code == 0, exported.output
    assert json.loads((tmp_path / "export" / "export.json").read_text())["parity"]["ort"]["rel_diff"] <= 1e-4


@needs_data
def test_resume_gives_the_same_plan_weights_and_report(tmp_path):
    full = _prune(tmp_path / "full", "--epochs", "2")
    stopped = _prune(tmp_path / "res", "--epochs", "2", "--stop-after", "1")
    assert full.exit_code == 0 and stopped.exit_code == 0 and "continue with --resume" in stopped.output
    resumed = _prune(tmp_path / "res", "--epochs", "2", "--resume")
    assert resumed.exit_code == 0, resumed.output
    a = torch.load(tmp_path / "full" / "model.pt", weights_only=True)
    b = torch.load(tmp_path / "res" / "model.pt", weights_only=True)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert _report(tmp_path / "full") == _report(tmp_path / "res")
    assert (tmp_path / "full" / "plan.json").read_text() == (tmp_path / "res" / "plan.json").read_text()


@pytest.mark.parametrize("spec", ["torchvision:resnet18(num_classes=2)", "torchvision:mobilenet_v2(num_classes=2)"])
def test_torchvision_models_prune_to_the_budget_and_export(spec, tmp_path):
    folder = foolbox_folder(tmp_path / "images", size=32)
    data = ["--data", str(folder), "--input-shape", "1x3x32x32", "--batch-size", "10", "--align", "1",
            "--no-progress", "--option", "rounds=2", "--option", "begin=0", "--option", "end=0.5"]
    run = _prune(tmp_path / "r", "--epochs", "1", model=spec, data=data)
    assert run.exit_code == 0, run.output
    r = _report(tmp_path / "r")
    print(f"\n{spec}: flops {r['flops_ratio']:.4f}, compactors {r['resrep']['compactors']}, "
          f"merge {r['resrep']['merge_rel_diff']:.2e}")
    assert WINDOW * 0.5 <= r["flops_ratio"] <= 0.5 and r["resrep"]["merge_rel_diff"] <= 1e-5
    exported = CliRunner().invoke(main, ["export", str(tmp_path / "r"), "--format", "onnx",
                                         "--out", str(tmp_path / "export")])
    assert exported.exit_code == 0, exported.output
    assert json.loads((tmp_path / "export" / "export.json").read_text())["parity"]["ort"]["rel_diff"] <= 1e-4


@pytest.mark.slow
@needs_data
def test_two_process_gloo_run_ends_with_identical_selections_and_weights(tmp_path):
    r0, r1, report = two_process_run(tmp_path, {"rounds": ("resrep", "round_widths")}, method="resrep",
                                     train_subset=128, test_subset=64, epochs=2)
    assert r0["kept"] == r1["kept"] and r0["rounds"] == r1["rounds"] and len(r0["rounds"]) == 8
    assert all(torch.equal(r0["weights"][k], r1["weights"][k]) for k in r0["weights"])
    assert 0.99 * 0.5 <= report["flops_ratio"] <= 0.5
