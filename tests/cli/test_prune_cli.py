import json
import subprocess
import sys

import pytest
from click.testing import CliRunner

from edgeprune.cli import main


def test_prune_writes_plan_model_report(tmp_path):
    out = tmp_path / "run"
    result = CliRunner().invoke(
        main, ["prune", "edgeprune:resnet20", "--method", "l1", "--budget", "flops=0.5", "--align", "8", "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == ["manifest.json", "model.pt", "plan.json", "report.json"]
    report = json.loads((out / "report.json").read_text())
    for key in ("method", "budget", "flops_dense", "flops_pruned", "params_dense", "params_pruned", "groups", "parity_max_abs_diff"):
        assert key in report
    assert report["budget"] == "flops=0.5" and report["flops_pruned"] <= 0.5 * report["flops_dense"]
    assert report["parity_rel_diff"] <= 1e-4
    assert "FLOPs" in result.output


@pytest.mark.parametrize(
    "args, message",
    [
        (["edgeprune:resnet20", "--budget", "flops=0.001"], "smallest achievable is flops="),
        (["edgeprune:resnet20", "--budget", "flops=2"], "must be in (0, 1]"),
        (["edgeprune:resnet20", "--budget", "flops=0.5", "--method", "taylor"], "unknown method 'taylor'"),
        (["edgeprune:nope", "--budget", "flops=0.5"], "unknown edgeprune model 'nope'"),
        (["torchvision:resnet18", "--budget", "flops=0.5", "--input-shape", "1x1x64x64"], "failed in module 'conv1'"),
    ],
)
def test_bad_input_is_a_clear_error_and_writes_nothing(tmp_path, args, message):
    out = tmp_path / "run"
    result = CliRunner().invoke(main, ["prune", *args, "--out", str(out)])
    assert result.exit_code == 2, result.output
    assert message in result.output and "Traceback" not in result.output
    assert not out.exists()


def test_info_lists_groups():
    result = CliRunner().invoke(main, ["info", "edgeprune:resnet20"])
    assert result.exit_code == 0, result.output
    assert "13 channel groups, 12 prunable" in result.output
    assert "fixed: its channels reach the model output" in result.output


def test_help_does_not_import_torch():
    code = "import sys; from edgeprune.cli import main; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_align_auto_takes_the_target_alignment(tmp_path):
    out = tmp_path / "run"
    result = CliRunner().invoke(main, ["prune", "edgeprune:resnet56", "--budget", "flops=0.5", "--target", "arm64-ort", "--out", str(out)])
    assert result.exit_code == 0, result.output
    report = json.loads((out / "report.json").read_text())
    assert report["align"] == 8  # targets/arm64-ort.toml
    assert all(g["kept"] % 8 == 0 or g["kept"] == g["size"] for g in report["groups"])


def test_unknown_target_lists_available(tmp_path):
    result = CliRunner().invoke(main, ["prune", "edgeprune:resnet20", "--budget", "flops=0.5", "--target", "nope", "--out", str(tmp_path / "r")])
    assert result.exit_code == 2 and "unknown target 'nope'; available:" in result.output
    assert not (tmp_path / "r").exists()


def test_python_dash_m_runs_the_cli():
    out = subprocess.run([sys.executable, "-m", "edgeprune", "--version"], check=True, capture_output=True, text=True)
    assert "edgeprune" in out.stdout


def test_method_options_pass_through_option(tmp_path):
    """Any method's options reach it as --option KEY=VALUE (no per-method CLI flag needed); a
    wrong key names the methods that have it."""
    base = ["prune", "edgeprune:resnet20", "--budget", "flops=0.5", "--align", "8"]
    bad = CliRunner().invoke(main, [*base, "--method", "l1", "--option", "consistency_lambda=0.5", "--out", str(tmp_path / "a")])
    assert bad.exit_code == 2 and "--option consistency_lambda" not in bad.output
    assert "method 'l1' has no such option; it is only valid with --method crsfp" in bad.output
    malformed = CliRunner().invoke(main, [*base, "--option", "seed", "--out", str(tmp_path / "b")])
    assert malformed.exit_code == 2 and "must be KEY=VALUE" in malformed.output


def test_a_failed_rerun_leaves_the_previous_folder_usable(tmp_path):
    """An error before anything changes (here an infeasible budget) keeps the old folder intact
    and still verifiable against its manifest."""
    from edgeprune.files.manifest import read_manifest

    out = tmp_path / "run"
    base = ["prune", "edgeprune:resnet20", "--method", "l1", "--align", "8", "--out", str(out)]
    assert CliRunner().invoke(main, [*base, "--budget", "flops=0.5"]).exit_code == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    failed = CliRunner().invoke(main, [*base, "--budget", "flops=0.001"])
    assert failed.exit_code == 2 and "smallest achievable" in failed.output
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert read_manifest(out, kinds=("prune",)).settings["budget"] == "flops=0.5"
