"""SFP and CR-SFP through `edgeprune prune` and `prune_while_training`: artifacts, --lambda,
exact resume, options in the run identity, and the exported P-NN's parity."""

import json

import pytest
import torch
from click.testing import CliRunner

from edgeprune.cli import main
from edgeprune.data import open_data
from edgeprune.models import build_model
from edgeprune.pruning.budget import Budget
from edgeprune.pruning.folder import load_pruned
from edgeprune.pruning.parity import fixed_input
from edgeprune.train import TrainConfig
from edgeprune.train.jobs import prune_while_training

TINY = ["--train-subset", "128", "--test-subset", "64", "--batch-size", "32", "--no-progress"]


@pytest.fixture(scope="module")
def dense_weights(tmp_path_factory):
    torch.manual_seed(0)
    model, _ = build_model("edgeprune:resnet20")
    path = tmp_path_factory.mktemp("dense") / "model.pt"
    torch.save(model.state_dict(), path)
    return path


def _prune(root, out, *extra, weights=None):
    args = ["prune", "edgeprune:resnet20", "--data", "fashion-mnist", "--data-root", str(root), *TINY, "--align", "1",
            "--out", str(out), *extra]
    if weights:
        args += ["--weights", str(weights)]
    return CliRunner().invoke(main, args)


def _report(out):
    report = json.loads((out / "report.json").read_text())
    report.pop("elapsed_s")
    return report


@pytest.mark.parametrize("method, extra", [("sfp", []), ("crsfp", ["--lambda", "0.5"])])
def test_cli_writes_the_artifacts_with_per_epoch_metrics(fake_root, dense_weights, tmp_path, method, extra):
    out = tmp_path / method
    result = _prune(fake_root, out, "--method", method, "--budget", "flops=0.5", "--epochs", "1", *extra,
                    weights=dense_weights)
    assert result.exit_code == 0, result.output
    report = _report(out)
    assert report["method"] == method and 0.99 * 0.5 <= report["flops_ratio"] <= 0.5
    assert report["parity_rel_diff"] <= 1e-4 and 0.0 <= report["accuracy"] <= 1.0
    assert report[method]["pruned_channels"] > 0 and len(report[method]["regrown_per_epoch"]) == 1
    metrics = json.loads((out / "metrics.json").read_text())
    epoch = metrics["epochs"][0]
    assert f"{method}_regrown" in epoch and epoch["test_accuracy"] == report["accuracy"]  # eval = pruned model
    if method == "crsfp":
        assert report["crsfp"]["config"] == {"consistency_lambda": 0.5} and report["crsfp"]["r_head_dropped"]
        assert metrics["method_options"] == {"consistency_lambda": 0.5}
        assert epoch["crsfp_ce_r"] > 0 and epoch["crsfp_ce_p"] > 0 and epoch["crsfp_kl"] >= 0
    model, plan, _ = load_pruned(out)
    assert model(torch.zeros(2, 1, 28, 28)).shape == (2, 10)


def test_lambda_is_only_for_crsfp(fake_root, dense_weights, tmp_path):
    result = _prune(fake_root, tmp_path / "x", "--method", "sfp", "--budget", "flops=0.5", "--epochs", "1",
                    "--lambda", "1", weights=dense_weights)
    assert result.exit_code == 2 and "only valid with --method crsfp" in result.output
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize("method", ["sfp", "crsfp"])
def test_resume_gives_the_same_plan_weights_and_report(fake_root, dense_weights, tmp_path, method):
    args = ["--method", method, "--budget", "ratio=0.5", "--epochs", "2"]
    assert _prune(fake_root, tmp_path / "full", *args, weights=dense_weights).exit_code == 0
    stopped = _prune(fake_root, tmp_path / "res", *args, "--stop-after", "1", weights=dense_weights)
    assert stopped.exit_code == 0 and "continue with --resume" in stopped.output
    resumed = _prune(fake_root, tmp_path / "res", *args, "--resume", weights=dense_weights)
    assert resumed.exit_code == 0, resumed.output
    assert (tmp_path / "full" / "plan.json").read_text() == (tmp_path / "res" / "plan.json").read_text()
    assert _report(tmp_path / "full") == _report(tmp_path / "res")
    a = torch.load(tmp_path / "full" / "model.pt", weights_only=True)
    b = torch.load(tmp_path / "res" / "model.pt", weights_only=True)
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_resume_with_another_lambda_is_refused(fake_root, dense_weights, tmp_path):
    args = ["--method", "crsfp", "--budget", "flops=0.5", "--epochs", "2"]
    assert _prune(fake_root, tmp_path / "r", *args, "--stop-after", "1", weights=dense_weights).exit_code == 0
    result = _prune(fake_root, tmp_path / "r", *args, "--lambda", "2", "--resume", weights=dense_weights)
    assert result.exit_code == 2 and "consistency_lambda" in result.output and "Traceback" not in result.output


def test_exported_p_nn_matches_the_masked_p_nn_and_exports_with_parity(fake_root, tmp_path, monkeypatch):
    pytest.importorskip("onnxruntime")
    pytest.importorskip("openvino")
    from edgeprune.export import export_model
    from edgeprune.methods.crsfp import CRSFP
    from edgeprune.models.preprocess import FASHION_MNIST

    torch.manual_seed(0)
    model, shape = build_model("edgeprune:resnet20")
    data = open_data("fashion-mnist", root=fake_root, input_shape=shape, train_subset=64, test_subset=32)
    x = fixed_input(shape)
    captured = {}
    original = CRSFP.detach

    def capture(self):  # P-NN as training left it: masked backbone, own head (eval mode)
        was = self._model.training
        self._model.eval()
        with torch.no_grad():
            captured["p_nn"] = self._model(x)
            self._model.train(was)
        original(self)

    monkeypatch.setattr(CRSFP, "detach", capture)
    result = prune_while_training(model, "edgeprune:resnet20", shape, "crsfp", Budget.parse("flops=0.5"), 1, data,
                                  TrainConfig(epochs=1, batch_size=32, lr=0.05), tmp_path / "run", progress=False)
    with torch.no_grad():
        slim = result.model.eval()(x)
    assert ((slim - captured["p_nn"]).abs().max() / captured["p_nn"].abs().max()) < 1e-4
    assert result.model.fc.weight.shape[0] == 10 and not any("r_head" in k for k in result.model.state_dict())
    export = export_model(result.model, shape, tmp_path / "export", preprocess=FASHION_MNIST)
    parity = export.report["parity"]
    assert set(parity) == {"ort", "openvino"}
    assert all(p["passed"] and p["rel_diff"] <= 1e-4 for p in parity.values())
    assert export.files["onnx"].is_file()
