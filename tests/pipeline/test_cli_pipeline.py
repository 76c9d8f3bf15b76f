"""`edgeprune pipeline` end to end on a tiny config."""

from __future__ import annotations

import shutil

from click.testing import CliRunner
from pipeline_helpers import write_tiny

from edgeprune.cli import main


def test_bad_config_exits_2_and_writes_nothing(tmp_path):
    config = write_tiny(tmp_path)
    config.write_text(config.read_text().replace('budget = "flops=0.5"', 'budget = "flops=0"'))
    out = tmp_path / "never"
    result = CliRunner().invoke(main, ["pipeline", str(config), "--out", str(out)])
    assert result.exit_code == 2
    assert f"{config}: prune.budget: budget 'flops=0'" in result.output
    assert not out.exists()


def test_bad_stop_after_is_a_usage_error(tmp_path):
    config = write_tiny(tmp_path)
    result = CliRunner().invoke(main, ["pipeline", str(config), "--stop-after", "export:1", "--out", str(tmp_path / "o")])
    assert result.exit_code == 2 and "--stop-after" in result.output
    assert not (tmp_path / "o").exists()


def test_cli_rerun_and_budget_failure(tiny_run, tmp_path):
    config, out, _ = tiny_run
    folder = tmp_path / "c"
    shutil.copytree(config.parent, folder)
    config, out = folder / config.name, folder / "out"
    runner = CliRunner()
    result = runner.invoke(main, ["pipeline", str(config), "--out", str(out), "--no-progress", "--threads", "1"])
    assert result.exit_code == 0, result.output
    assert "[1/8] dense ... skipped (unchanged)" in result.output
    assert "[8/8] report ... done" in result.output
    assert f"wrote {out}/report.md" in result.output

    config.write_text(config.read_text().replace("max_ratio = 5.0", "max_ratio = 0.001"))
    result = runner.invoke(main, ["pipeline", str(config), "--out", str(out), "--no-progress"])
    assert result.exit_code == 1, result.output
    assert "[6/8] profile ... skipped (unchanged)" in result.output
    assert "[7/8] check ... running" in result.output
    assert "BUDGET CHECK FAILED" in (out / "report.md").read_text()


def test_cli_stop_and_resume(tmp_path):
    config = write_tiny(tmp_path)
    config.write_text(config.read_text().replace("epochs = 2\nbatch_size = 32\nseed", "epochs = 1\nbatch_size = 32\nseed"))
    out = tmp_path / "out"
    runner = CliRunner()
    args = ["pipeline", str(config), "--out", str(out), "--no-progress"]
    result = runner.invoke(main, [*args, "--stop-after", "prune:1"])
    assert result.exit_code == 0, result.output
    assert "[2/8] prune ... stopped after epoch 1" in result.output and not (out / "report.md").exists()
    result = runner.invoke(main, args)
    assert result.exit_code == 2 and "pass --resume" in result.output
    result = runner.invoke(main, [*args, "--resume"])
    assert result.exit_code == 0, result.output
    assert "[1/8] dense ... skipped (unchanged)" in result.output
    assert "[2/8] prune ... resuming" in result.output
    assert (out / "report.json").is_file()


def test_help_is_listed():
    result = CliRunner().invoke(main, ["--help"])
    assert "pipeline" in result.output


OWN = """\
name = "own"
[model]
spec = "pipeline_helpers:small_cnn(num_classes=2)"
mean = [0.5, 0.5, 0.5]
std = [0.25, 0.25, 0.25]
[data]
name = "images"
[train]
epochs = 1
batch_size = 8
[prune]
method = "l1"
budget = "flops=0.5"
align = 8
finetune_epochs = 1
batch_size = 8
[export]
formats = ["onnx"]
[targets]
names = ["x86-ort-1t"]
runs = 3
warmup = 1
"""


def test_own_model_and_image_folder(tmp_path):
    from pipeline_helpers import image_folders

    image_folders(tmp_path / "images")
    (tmp_path / "own.toml").write_text(OWN)
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["pipeline", str(tmp_path / "own.toml"), "--out", str(out), "--no-progress"])
    assert result.exit_code == 0, result.output
    import json

    r = json.loads((out / "report.json").read_text())
    assert r["model"]["name"] == "small_cnn" and r["model"]["input_shape"] == [1, 3, 16, 16]
    assert r["pruning"]["widths"] and all(w % 8 == 0 for w in r["pruning"]["widths"][:2])
    assert r["variants"]["pruned"]["accuracy"]["ort"] is not None and r["data"]["test_samples"] == 8
    assert r["variants"]["pruned"]["latency"]["x86-ort-1t"]["median_ms"] > 0


def test_latency_only_without_data(tmp_path):
    """No [data], no [train]: a seeded random init, one-shot pruning, latency only (the
    resnet18-224 example's shape of config)."""
    import json

    text = OWN.split("[data]")[0] + "[prune]\nmethod = \"l1\"\nbudget = \"flops=0.5\"\n" + OWN.split("finetune_epochs = 1\nbatch_size = 8\n")[1]
    (tmp_path / "lat.toml").write_text(text.replace('name = "own"', 'name = "lat"'))
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["pipeline", str(tmp_path / "lat.toml"), "--out", str(out), "--no-progress"])
    assert result.exit_code == 0, result.output
    r = json.loads((out / "report.json").read_text())
    assert r["data"] is None and r["model"]["dense_source"] == "random init (seed 0)"
    assert all(v["accuracy"] == {} for v in r["variants"].values())
    assert set(r["variants"]) == {"dense", "pruned"}
    assert r["variants"]["pruned"]["latency"]["x86-ort-1t"]["speedup_vs_dense"] > 0
    assert "data: none" in (out / "report.md").read_text()


def test_ctrl_c_during_training_says_what_is_kept(tmp_path, monkeypatch):
    from edgeprune.train.trainer import Trainer

    config = write_tiny(tmp_path)
    out = tmp_path / "out"
    original, calls = Trainer._train_epoch, []

    def interrupted_at_the_fourth_epoch(self, epoch):  # dense epochs 1-2, prune epochs 1-2
        calls.append(epoch)
        if len(calls) == 4:
            raise KeyboardInterrupt
        return original(self, epoch)

    monkeypatch.setattr(Trainer, "_train_epoch", interrupted_at_the_fourth_epoch)
    args = ["pipeline", str(config), "--out", str(out), "--no-progress"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 130, result.output
    assert "[2/8] prune ... interrupted; its last epoch checkpoint is kept: continue with --resume" in result.output
    assert (out / ".prune.partial" / "checkpoint.pt").is_file() and not (out / "prune").exists()
    monkeypatch.setattr(Trainer, "_train_epoch", original)
    result = CliRunner().invoke(main, [*args, "--resume"])
    assert result.exit_code == 0, result.output
    assert "[2/8] prune ... resuming" in result.output and (out / "report.json").is_file()
