"""The CLI and the pipeline run the same prune job (byte-identical plan.json for the same
request), and every folder they leave is checked against its manifest on read."""

from __future__ import annotations

import json
import shutil

from click.testing import CliRunner

from edgeprune.cli import main


def _cli_prune_like_the_tiny_pipeline(config, out, target):
    """`edgeprune prune` with the tiny pipeline's [prune] request, from its dense stage's weights."""
    folder = config.parent
    return CliRunner().invoke(main, [
        "prune", "edgeprune:resnet20", "--weights", str(out / "dense" / "model.pt"), "--method", "dtp",
        "--budget", "flops=0.5", "--epochs", "2", "--batch-size", "32", "--data", "fashion-mnist",
        "--data-root", str(folder / "fmnist"), "--train-subset", "128", "--test-subset", "64",
        "--no-progress", "--out", str(target),
    ])


def test_the_same_request_gives_byte_identical_plans(tiny_run, tmp_path):
    config, out, _ = tiny_run
    result = _cli_prune_like_the_tiny_pipeline(config, out, tmp_path / "cli")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "cli" / "plan.json").read_bytes() == (out / "prune" / "plan.json").read_bytes()
    assert (tmp_path / "cli" / "model.pt").read_bytes() == (out / "prune" / "model.pt").read_bytes()
    cli, pipe = (json.loads((d / "manifest.json").read_text()) for d in (tmp_path / "cli", out / "prune"))
    assert cli["kind"] == pipe["kind"] == "prune" and cli["preprocess"] == pipe["preprocess"]
    assert cli["files"]["plan.json"] == pipe["files"]["plan.json"]
    differ = {k for k in cli["settings"] if cli["settings"][k] != pipe["settings"][k]}
    assert differ <= {"out", "weights", "data_root", "eval_batch_size", "input_shape"}, differ  # paths, defaults


def test_a_prune_folder_with_a_swapped_file_is_refused(tiny_run, tmp_path):
    config, out, _ = tiny_run
    other = tmp_path / "other"
    result = CliRunner().invoke(main, ["prune", "edgeprune:resnet20", "--weights", str(out / "dense" / "model.pt"),
                                       "--method", "l1", "--budget", "flops=0.5", "--out", str(other)])
    assert result.exit_code == 0, result.output
    intact, mixed = tmp_path / "intact", tmp_path / "mixed"
    shutil.copytree(out / "prune", intact)
    shutil.copytree(out / "prune", mixed)
    shutil.copyfile(other / "model.pt", mixed / "model.pt")  # another run's weights
    data = ["--data", "fashion-mnist", "--data-root", str(config.parent / "fmnist")]
    for args in (["export", str(mixed), "--format", "onnx", "--out", str(tmp_path / "e")], ["eval", str(mixed), *data]):
        refused = CliRunner().invoke(main, args)
        assert refused.exit_code == 2, refused.output
        assert f"{mixed / 'model.pt'}: " in refused.output and "manifest.json" in refused.output
        assert "Traceback" not in refused.output
    assert not (tmp_path / "e").exists()
    assert CliRunner().invoke(main, ["eval", str(intact), *data]).exit_code == 0
    exported = CliRunner().invoke(main, ["export", str(intact), "--format", "onnx", "--out", str(tmp_path / "ok")])
    assert exported.exit_code == 0, exported.output
    # what the model was fed travels from the prune folder into the file, without --mean/--std
    fed = json.loads((intact / "manifest.json").read_text())["preprocess"]
    embedded = json.loads((tmp_path / "ok" / "export.json").read_text())["preprocess"]
    assert (embedded["mean"], embedded["std"]) == (fed["mean"], fed["std"])


def test_an_export_folder_with_a_swapped_file_is_refused(tiny_run, tmp_path):
    config, out, _ = tiny_run
    mixed, intact = tmp_path / "mixed", tmp_path / "intact"
    shutil.copytree(out / "export" / "pruned", mixed)
    shutil.copytree(out / "export" / "pruned", intact)
    shutil.copyfile(out / "export" / "dense" / "model.onnx", mixed / "model.onnx")  # the dense run's file
    data = ["--data", "fashion-mnist", "--data-root", str(config.parent / "fmnist")]
    for args in (["eval", str(mixed / "model.onnx"), *data],
                 ["profile", str(mixed / "model.onnx"), "--target", "x86-ort-1t", "--runs", "2", "--warmup", "0"]):
        refused = CliRunner().invoke(main, args)
        assert refused.exit_code == 2, refused.output
        assert f"{mixed / 'model.onnx'}: " in refused.output and "Traceback" not in refused.output
    ok = CliRunner().invoke(main, ["eval", str(intact / "model.onnx"), *data])
    assert ok.exit_code == 0, ok.output
