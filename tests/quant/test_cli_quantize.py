"""`edgeprune quantize` through click's CliRunner: table on stdout, JSON report, exit 2 on bad input."""

import json
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
sys.path.insert(0, str(Path(__file__).parent))

import quant_helpers as qh  # noqa: E402

from edgeprune.cli import main  # noqa: E402


@pytest.fixture
def setup(tmp_path, onnx_models):
    return qh.tiny_model_and_calib(tmp_path, onnx_models, images=16, count=8, holdout=8)


def test_quantize_writes_model_and_report(tmp_path, setup):
    model, calib = setup
    out = tmp_path / "int8"
    result = CliRunner().invoke(main, ["quantize", str(model), "--calib", str(calib), "--method", "aciq",
                                       "--bias-correction", "--no-openvino", "--no-progress", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == ["manifest.json", "model.onnx", "quantize.json"]
    report = json.loads((out / "quantize.json").read_text())
    assert report["bias_correction"] == "data" and report["real_int8"] is True
    assert "SQNR of logits vs fp32 (dB)" in result.output and "[real int8]" in result.output
    assert f"{report['sqnr_db']}" in result.output


def test_quantize_simulated_low_bits(tmp_path, setup):
    model, calib = setup
    result = CliRunner().invoke(main, ["quantize", str(model), "--calib", str(calib), "--method", "minmax",
                                       "--weight-bits", "4", "--act-bits", "4", "--no-progress",
                                       "--out", str(tmp_path / "w4a4")])
    assert result.exit_code == 0, result.output
    assert "[simulated]" in result.output and "W4A4 minmax" in result.output


def test_quantize_empty_calibration_is_a_clear_error(tmp_path, setup):
    model, _ = setup
    empty = qh.manifest(tmp_path / "empty.toml", f'[source]\nkind = "folder"\npath = "{tmp_path}/images"\n'
                        '[samples]\ncount = 0\n')
    result = CliRunner().invoke(main, ["quantize", str(model), "--calib", str(empty), "--out", str(tmp_path / "x")])
    assert result.exit_code == 2
    assert "empty.toml: the calibration set is empty" in result.output
    assert not (tmp_path / "x").exists()


def test_unknown_manifest_name_lists_the_builtin_ones(tmp_path, setup):
    model, _ = setup
    result = CliRunner().invoke(main, ["quantize", str(model), "--calib", "nope", "--out", str(tmp_path / "x")])
    assert result.exit_code == 2 and "fashion-mnist" in result.output


BLOCK_TORCH = """
import importlib.abc, json, sys

class BlockTorch(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("torch", "torchvision", "torch_pruning"):
            raise ImportError(f"torch is blocked in this test ({name})")
        return None

sys.meta_path.insert(0, BlockTorch())
from edgeprune.cli import main

try:
    main.main(args=sys.argv[1:], prog_name="edgeprune", standalone_mode=False)
    code = 0
except SystemExit as exit:
    code = exit.code
print(json.dumps({"code": code, "torch_loaded": sorted(m for m in sys.modules if m.split(".")[0] == "torch")}))
"""


def test_quantize_runs_with_torch_blocked(tmp_path, setup):
    import subprocess

    model, calib = setup
    out = tmp_path / "int8"
    proc = subprocess.run(
        [sys.executable, "-c", BLOCK_TORCH, "quantize", str(model), "--calib", str(calib), "--bias-correction",
         "--no-progress", "--out", str(out)],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == {"code": 0, "torch_loaded": []}
    assert (out / "model.onnx").is_file()


def test_ctrl_c_is_one_line_and_keeps_the_previous_result(tmp_path, setup, monkeypatch):
    """Ctrl-C during calibration: one line on stderr (exit 130), no traceback, and the previous
    result in --out is untouched (issue 14: it used to print 129 lines)."""
    import edgeprune.quant.quantize as quantize_module

    model, calib = setup
    out = tmp_path / "int8"
    args = ["quantize", str(model), "--calib", str(calib), "--no-progress", "--out", str(out)]
    assert CliRunner().invoke(main, args).exit_code == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(quantize_module, "_statistics", interrupted)
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 130, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Interrupted (Ctrl-C)"), result.output
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(".int8.")]
