"""`edgeprune pipeline` end to end on a tiny config."""

from __future__ import annotations

import shutil

from click.testing import CliRunner

from edgeprune.cli import main
from pipeline_helpers import write_tiny


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
