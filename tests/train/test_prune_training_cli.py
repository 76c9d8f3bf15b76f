"""`edgeprune prune` with training: DTP (--epochs) and one-shot + fine-tuning (--finetune-epochs)."""

import json

import pytest
import torch
from click.testing import CliRunner

from edgeprune.cli import main
from edgeprune.models import build_model
from edgeprune.pruning.folder import load_pruned

TINY = ["--train-subset", "128", "--test-subset", "64", "--batch-size", "32", "--no-progress"]


@pytest.fixture(scope="module")
def dense_weights(tmp_path_factory):
    torch.manual_seed(0)
    model, _ = build_model("edgeprune:resnet20")
    path = tmp_path_factory.mktemp("dense") / "model.pt"
    torch.save(model.state_dict(), path)
    return path


def _prune(root, out, *extra, weights=None, model="edgeprune:resnet20"):
    args = ["prune", model, "--data", "fashion-mnist", "--data-root", str(root), *TINY, "--align", "1", "--out", str(out), *extra]
    if weights:
        args += ["--weights", str(weights)]
    return CliRunner().invoke(main, args)


def _report(out):
    report = json.loads((out / "report.json").read_text())
    report.pop("elapsed_s")
    return report


def test_dtp_writes_the_one_shot_artifacts_plus_accuracy(fake_root, dense_weights, tmp_path):
    out = tmp_path / "dtp"
    result = _prune(fake_root, out, "--method", "dtp", "--budget", "flops=0.5", "--epochs", "1", weights=dense_weights)
    assert result.exit_code == 0, result.output
    assert {"plan.json", "model.pt", "report.json", "metrics.json", "checkpoint.pt"} <= {p.name for p in out.iterdir()}
    report = _report(out)
    assert report["method"] == "dtp" and 0.99 * 0.5 <= report["flops_ratio"] <= 0.5
    assert report["parity_rel_diff"] <= 1e-4 and 0.0 <= report["accuracy"] <= 1.0
    assert report["dtp"]["max_mask_sum_error"] < 1e-5
    assert report["training"]["data"]["normalization"]["mean"] == [0.286]
    model, plan, _ = load_pruned(out)
    assert [len(g.kept) for g in plan.groups] == [g["kept"] for g in report["groups"]]
    evaluated = CliRunner().invoke(main, ["eval", str(out), "--data", "fashion-mnist", "--data-root", str(fake_root),
                                          "--test-subset", "64", "--json", str(tmp_path / "e.json")])
    assert evaluated.exit_code == 0, evaluated.output
    assert json.loads((tmp_path / "e.json").read_text())["accuracy"] == report["accuracy"]


def test_dtp_resume_gives_the_same_plan_and_report(fake_root, dense_weights, tmp_path):
    args = ["--method", "dtp", "--budget", "ratio=0.5", "--epochs", "2"]
    assert _prune(fake_root, tmp_path / "full", *args, weights=dense_weights).exit_code == 0
    stopped = _prune(fake_root, tmp_path / "res", *args, "--stop-after", "1", weights=dense_weights)
    assert stopped.exit_code == 0 and "continue with --resume" in stopped.output
    assert not (tmp_path / "res" / "plan.json").exists()
    assert _prune(fake_root, tmp_path / "res", *args, "--resume", weights=dense_weights).exit_code == 0
    assert (tmp_path / "full" / "plan.json").read_text() == (tmp_path / "res" / "plan.json").read_text()
    full, resumed = _report(tmp_path / "full"), _report(tmp_path / "res")
    assert full == resumed
    a = torch.load(tmp_path / "full" / "model.pt", weights_only=True)
    b = torch.load(tmp_path / "res" / "model.pt", weights_only=True)
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_one_shot_then_finetune_adds_accuracy(fake_root, dense_weights, tmp_path):
    out = tmp_path / "l1ft"
    result = _prune(fake_root, out, "--method", "l1", "--budget", "flops=0.5", "--finetune-epochs", "1", weights=dense_weights)
    assert result.exit_code == 0, result.output
    report = _report(out)
    assert report["method"] == "l1" and report["training"]["epochs"] == 1
    metrics = json.loads((out / "metrics.json").read_text())
    assert report["accuracy"] == metrics["accuracy"]
    model, _, _ = load_pruned(out)  # the fine-tuned slim weights load into the replayed plan
    assert model(torch.zeros(2, 1, 28, 28)).shape == (2, 10)


@pytest.mark.parametrize(
    "args, message",
    [
        (["--method", "dtp", "--budget", "flops=0.001", "--epochs", "1", "--align", "16"], "smallest achievable is flops="),
        (["--method", "dtp", "--budget", "flops=0.5"], "pass --data and --epochs"),
        (["--method", "l1", "--budget", "flops=0.5", "--epochs", "1"], "use --finetune-epochs"),
    ],
)
def test_bad_training_arguments_are_clear_errors(fake_root, tmp_path, args, message):
    out = tmp_path / "run"
    result = _prune(fake_root, out, *args)
    assert result.exit_code == 2 and message in result.output and "Traceback" not in result.output
    assert not (out / "report.json").exists()


def test_weights_of_another_model_are_refused(fake_root, tmp_path):
    model, _ = build_model("edgeprune:resnet56")
    torch.save(model.state_dict(), tmp_path / "r56.pt")
    result = _prune(fake_root, tmp_path / "run", "--method", "dtp", "--budget", "flops=0.5", "--epochs", "1",
                    weights=tmp_path / "r56.pt")
    assert result.exit_code == 2 and "do not fit edgeprune:resnet20" in result.output
