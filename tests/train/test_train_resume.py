"""`edgeprune train` end to end: artifacts, exact resume, refusals."""

import json
import shutil

import torch
from click.testing import CliRunner

from edgeprune.cli import main

TINY = ["--train-subset", "256", "--test-subset", "100", "--batch-size", "128", "--no-progress"]


def _train(root, out, *extra, model="edgeprune:resnet20"):
    args = ["train", model, "--data", "fashion-mnist", "--data-root", str(root), *TINY, "--out", str(out), *extra]
    return CliRunner().invoke(main, args)


def _strip_times(metrics):
    return [{k: v for k, v in e.items() if k != "elapsed_s"} for e in metrics["epochs"]]


def test_train_writes_model_and_metrics(fmnist_root, tmp_path):
    result = _train(fmnist_root, tmp_path / "run", "--epochs", "1")
    assert result.exit_code == 0, result.output
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["complete"] and 0.0 <= metrics["accuracy"] <= 1.0
    assert metrics["accuracy"] == metrics["epochs"][-1]["test_accuracy"]
    assert metrics["spec"] == "edgeprune:resnet20" and metrics["input_shape"] == [1, 1, 28, 28]
    assert metrics["data"]["normalization"] == {"scale": 1 / 255, "mean": [0.286], "std": [0.353]}
    state = torch.load(tmp_path / "run" / "model.pt", weights_only=True)
    assert "conv1.weight" in state and "fc.bias" in state
    evaluated = CliRunner().invoke(
        main, ["eval", str(tmp_path / "run"), "--data", "fashion-mnist", "--data-root", str(fmnist_root),
               "--test-subset", "100", "--json", str(tmp_path / "eval.json")]
    )
    assert evaluated.exit_code == 0, evaluated.output
    assert json.loads((tmp_path / "eval.json").read_text())["accuracy"] == metrics["accuracy"]


def test_resume_gives_the_same_result_as_an_uninterrupted_run(fmnist_root, tmp_path):
    assert _train(fmnist_root, tmp_path / "full", "--epochs", "2").exit_code == 0
    stopped = _train(fmnist_root, tmp_path / "resumed", "--epochs", "2", "--stop-after", "1")
    assert stopped.exit_code == 0 and "continue with --resume" in stopped.output
    assert not (tmp_path / "resumed" / "model.pt").exists()
    assert _train(fmnist_root, tmp_path / "resumed", "--epochs", "2", "--resume").exit_code == 0
    full = json.loads((tmp_path / "full" / "metrics.json").read_text())
    resumed = json.loads((tmp_path / "resumed" / "metrics.json").read_text())
    assert _strip_times(full) == _strip_times(resumed) and full["accuracy"] == resumed["accuracy"]
    a = torch.load(tmp_path / "full" / "model.pt", weights_only=True)
    b = torch.load(tmp_path / "resumed" / "model.pt", weights_only=True)
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_existing_checkpoint_is_not_overwritten_without_resume(fake_root, tmp_path):
    assert _train(fake_root, tmp_path / "run", "--epochs", "2", "--stop-after", "1").exit_code == 0
    again = _train(fake_root, tmp_path / "run", "--epochs", "2")
    assert again.exit_code == 2 and "pass --resume" in again.output


def test_resume_with_other_settings_is_refused(fake_root, tmp_path):
    assert _train(fake_root, tmp_path / "run", "--epochs", "2", "--stop-after", "1").exit_code == 0
    other = _train(fake_root, tmp_path / "run", "--epochs", "2", "--lr", "0.05", "--resume")
    assert other.exit_code == 2 and "different settings" in other.output and "'lr': 0.05" in other.output


def test_checkpoint_from_another_model_is_refused(fake_root, tmp_path):
    assert _train(fake_root, tmp_path / "r20", "--epochs", "2", "--stop-after", "1").exit_code == 0
    (tmp_path / ".r56.partial").mkdir()  # an interrupted run is kept in .OUT.partial/ beside --out
    shutil.copy(tmp_path / ".r20.partial" / "checkpoint.pt", tmp_path / ".r56.partial" / "checkpoint.pt")
    other = _train(fake_root, tmp_path / "r56", "--epochs", "2", "--resume", model="edgeprune:resnet56")
    assert other.exit_code == 2 and "was written for model edgeprune:resnet20" in other.output
    assert "Traceback" not in other.output


def test_missing_dataset_names_the_package(tmp_path):
    result = _train(tmp_path / "no-data", tmp_path / "run", "--epochs", "1")
    assert result.exit_code == 2 and "dataset-fashion-mnist" in result.output
    assert not (tmp_path / "run").exists()


def test_a_rerun_stopped_or_failed_keeps_the_previous_result(fake_root, tmp_path):
    """train builds in .OUT.partial/ and swaps in only when complete: a re-run that stops early
    or fails leaves the previous complete folder as it was."""
    out = tmp_path / "run"
    assert _train(fake_root, out, "--epochs", "1").exit_code == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    stopped = _train(fake_root, out, "--epochs", "2", "--stop-after", "1")
    assert stopped.exit_code == 0 and "--resume" in stopped.output
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert (tmp_path / ".run.partial" / "checkpoint.pt").is_file()
    refused = _train(fake_root, out, "--epochs", "2")  # would drop the interrupted run: refused
    assert refused.exit_code == 2 and "pass --resume" in refused.output
    resumed = _train(fake_root, out, "--epochs", "2", "--resume")
    assert resumed.exit_code == 0, resumed.output
    assert json.loads((out / "metrics.json").read_text())["complete"]
    assert len(json.loads((out / "metrics.json").read_text())["epochs"]) == 2
    assert not (tmp_path / ".run.partial").exists()
