"""`edgeprune profile`, `check` and `compare` end to end through the CLI, on tiny ONNX models
built with onnx.helper; plus the same with torch blocked, in a subprocess."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import onnx_models  # tests/onnx_models.py (tests/ is on sys.path)
import pytest
from click.testing import CliRunner

from edgeprune.cli import main

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

TARGET = """\
name = "cli-t"
description = "test target"
align = 16

[runtime]
name = "ort"
threads = 1

[profile]
runs = 5
warmup = 1
batch = 1

[budgets]
max_ratio = {max_ratio}
latency_ms = {{ tiny = {budget} }}
"""


@pytest.fixture
def tiny(tmp_path):
    return onnx_models.tiny_cnn(tmp_path / "tiny.onnx")


def make_target(tmp_path, budget=1000.0, max_ratio=50.0, folder=""):
    (tmp_path / folder).mkdir(exist_ok=True)
    path = tmp_path / folder / "cli-t.toml"
    path.write_text(TARGET.format(budget=budget, max_ratio=max_ratio))
    return str(path)


def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def test_profile_runtime_writes_report(tiny, tmp_path):
    out = tmp_path / "r.json"
    result = invoke("profile", tiny, "--runtime", "ort", "--threads", "1", "--runs", "4", "--warmup", "1",
                    "--batch", "2", "--json", out)
    assert result.exit_code == 0, result.output
    assert "median" in result.output and "throughput" in result.output
    report = json.loads(out.read_text())
    for key in ("model", "runtime", "device", "threads", "precision", "batch", "runs", "warmup", "latency_ms",
                "throughput_fps", "machine", "edgeprune_version", "runtime_version", "target"):
        assert key in report, key
    assert report["model"]["name"] == "tiny" and report["model"]["path"] == str(tiny)
    assert set(report["latency_ms"]) >= {"median", "p90", "p99", "min", "mean", "std", "median_ci95"}
    assert report["batch"] == 2 and report["runs"] == 4 and report["threads"] == 1 and report["target"] is None


def test_profile_per_layer_openvino(tiny, tmp_path):
    pytest.importorskip("openvino")
    out = tmp_path / "r.json"
    result = invoke("profile", tiny, "--runtime", "openvino", "--threads", "1", "--runs", "3", "--warmup", "1",
                    "--per-layer", "--json", out)
    assert result.exit_code == 0, result.output
    assert "/layer1/conv1/Conv" in result.output
    report = json.loads(out.read_text())
    assert report["precision"] == "f32" and report["runtime_info"]["performance_hint"] == "LATENCY"
    assert report["layers"][0]["runtime_nodes"]


def test_profile_then_check_pass_and_fail(tiny, tmp_path):
    report = tmp_path / "tiny.json"
    target = make_target(tmp_path)
    result = invoke("profile", tiny, "--target", target, "--per-layer", "--json", report)
    assert result.exit_code == 0, result.output
    assert "/layer1/conv1/Conv" in result.output
    assert json.loads(report.read_text())["target"] == "cli-t"

    verdicts = tmp_path / "verdicts.json"
    ok = invoke("check", report, "--target", target, "--json", verdicts)
    assert ok.exit_code == 0, ok.output
    assert "pass" in ok.output and "1000" in ok.output
    data = json.loads(verdicts.read_text())
    assert data["passed"] is True and data["results"][0]["verdict"] == "pass"

    renamed = tmp_path / "renamed.json"
    assert invoke("profile", tiny, "-t", target, "--name", "other", "--json", renamed).exit_code == 0
    assert json.loads(renamed.read_text())["model"]["name"] == "other"
    assert "no budget" in invoke("check", renamed, "-t", target).output

    tight = make_target(tmp_path, budget=1e-6)
    broken = invoke("check", report, "--target", tight, "--json", verdicts)
    assert broken.exit_code == 1, broken.output
    assert "FAIL" in broken.output
    assert json.loads(verdicts.read_text())["passed"] is False


def test_check_relative_to_baseline_and_no_budget(tmp_path):
    dense = onnx_models.tiny_cnn(tmp_path / "dense.onnx", channels=32)
    slim = onnx_models.tiny_cnn(tmp_path / "slim.onnx", channels=8)
    target = make_target(tmp_path, max_ratio=50.0)
    for model in (dense, slim):
        assert invoke("profile", model, "-t", target, "--json", tmp_path / f"{model.stem}.json").exit_code == 0
    result = invoke("check", tmp_path / "slim.json", tmp_path / "dense.json", "-t", target,
                    "--baseline", tmp_path / "dense.json")
    assert result.exit_code == 0, result.output
    assert "baseline" in result.output and "50.000" in result.output
    no_budget = invoke("check", tmp_path / "slim.json", "-t", target)
    assert no_budget.exit_code == 0 and "no budget" in no_budget.output
    assert invoke("check", tmp_path / "slim.json", "-t", target, "--strict").exit_code == 1
    strict_ratio = invoke("check", tmp_path / "slim.json", "-t", make_target(tmp_path, max_ratio=1e-6),
                          "--baseline", tmp_path / "dense.json")
    assert strict_ratio.exit_code == 1 and "FAIL" in strict_ratio.output


def test_compare_writes_json(tmp_path):
    a = onnx_models.tiny_cnn(tmp_path / "a.onnx", channels=16, flops=2e6)
    b = onnx_models.tiny_cnn(tmp_path / "b.onnx", channels=8, flops=1e6)
    out = tmp_path / "cmp.json"
    result = invoke("compare", a, b, "--target", make_target(tmp_path), "--rounds", "4", "--json", out)
    assert result.exit_code == 0, result.output
    assert "speedup B vs A" in result.output and "FLOPs A / B      2.000x" in result.output
    data = json.loads(out.read_text())
    assert data["flops_ratio"] == 2.0 and data["rounds"] == 4 and data["target"] == "cli-t"


def test_compare_reports_feed_check_with_a_paired_ratio(tmp_path):
    """`make <device>` times dense and pruned interleaved with compare --report-a/--report-b and
    holds the pruned one to a ratio of the dense one measured in the same loop."""
    a = onnx_models.tiny_cnn(tmp_path / "a.onnx", channels=16, flops=2e6)
    b = onnx_models.tiny_cnn(tmp_path / "b.onnx", channels=8, flops=1e6)
    target = make_target(tmp_path)
    result = invoke("compare", a, b, "--target", target, "--rounds", "6", "--name-a", "net-dense", "--name-b", "net",
                    "--report-a", tmp_path / "dense.json", "--report-b", tmp_path / "pruned.json", "--json",
                    tmp_path / "cmp.json")
    assert result.exit_code == 0, result.output
    dense, pruned = (json.loads((tmp_path / f).read_text()) for f in ("dense.json", "pruned.json"))
    assert dense["model"]["name"] == "net-dense" and pruned["model"]["name"] == "net"
    assert dense["interleaved"]["id"] == pruned["interleaved"]["id"] and len(pruned["samples_ms"]) == 6
    cmp = json.loads((tmp_path / "cmp.json").read_text())
    assert "profile_reports" not in cmp
    assert cmp["a"]["latency_ms"]["median"] == dense["latency_ms"]["median"]
    checked = invoke("check", tmp_path / "pruned.json", "-t", target, "--baseline", tmp_path / "dense.json",
                     "--max-ratio", "100", "--json", tmp_path / "check.json")
    assert checked.exit_code == 0, checked.output
    from edgeprune.budget_check import ratio_interval

    assert ratio_interval(pruned, dense)[1] == "paired bootstrap over 6 interleaved rounds"


@pytest.mark.parametrize(
    "args, message",
    [
        (["--runs", "2"], "give exactly one of --target NAME or --runtime"),
        (["--runtime", "ort", "--target", "ci-ort"], "give exactly one of --target NAME or --runtime"),
        (["--target", "ci-ort", "--threads", "2"], "--threads cannot be combined with --target"),
        (["--runtime", "ort", "--precision", "bf16"], "--precision applies to --runtime openvino only"),
        (["--runtime", "tflite"], "unknown runtime 'tflite'"),
        (["--target", "nope"], "unknown target 'nope'; available:"),
        (["--runtime", "ort", "--shape", "image=1x3x16x16"], "--shape names input 'image'"),
    ],
)
def test_profile_usage_errors(tiny, args, message):
    result = invoke("profile", tiny, *args)
    assert result.exit_code == 2, result.output
    assert message in result.output


def test_profile_input_errors(tmp_path):
    missing = invoke("profile", tmp_path / "missing.onnx", "--runtime", "ort")
    assert missing.exit_code == 2 and "model file not found" in missing.output
    fixed = onnx_models.tiny_cnn(tmp_path / "fixed.onnx", batch=1)
    wrong = invoke("profile", fixed, "--runtime", "ort", "--batch", "4")
    assert wrong.exit_code == 2
    assert "input 'input': the model has a fixed batch of 1 (shape [1, 3, 16, 16]); batch 4 asks for [4, 3, 16, 16]" in wrong.output


def test_profile_absent_openvino_device(tiny):
    ov = pytest.importorskip("openvino")
    if any(d.startswith("NPU") for d in ov.Core().available_devices):
        pytest.skip("this machine has an NPU")
    result = invoke("profile", tiny, "--runtime", "openvino", "--device", "NPU")
    assert result.exit_code == 2 and "OpenVINO device 'NPU' is not available on this machine; available:" in result.output


def test_check_rejects_bad_reports(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{}")
    result = invoke("check", bad, "--target", "ci-ort")
    assert result.exit_code == 2 and "not a profile report" in result.output


BLOCK_TORCH = textwrap.dedent(
    """
    import importlib.abc, json, sys

    class BlockTorch(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in ("torch", "torchvision", "torch_pruning"):
                raise ImportError(f"torch is blocked in this test ({name})")
            return None

    sys.meta_path.insert(0, BlockTorch())
    from edgeprune.cli import main

    codes = []
    for args in json.loads(sys.argv[1]):
        try:
            main.main(args=args, prog_name="edgeprune", standalone_mode=False)
            codes.append(0)
        except SystemExit as exit:
            codes.append(exit.code)
    import edgeprune.runtime, edgeprune.profile, edgeprune.targets, edgeprune.budget_check
    print(json.dumps({"codes": codes, "torch_loaded": sorted(m for m in sys.modules if m.split(".")[0] == "torch")}))
    """
)


def test_profile_and_check_run_with_torch_blocked(tiny, tmp_path):
    report = tmp_path / "tiny.json"
    target = make_target(tmp_path)
    commands = [
        ["profile", str(tiny), "--target", target, "--per-layer", "--json", str(report)],
        ["profile", str(tiny), "--runtime", "ort", "--runs", "2", "--warmup", "0"],
        ["check", str(report), "--target", target],
        ["check", str(report), "--target", make_target(tmp_path, budget=1e-6, folder="tight")],
    ]
    proc = subprocess.run(
        [sys.executable, "-c", BLOCK_TORCH, json.dumps(commands)],
        capture_output=True, text=True, timeout=120, cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result == {"codes": [0, 0, 0, 1], "torch_loaded": []}
    assert json.loads(report.read_text())["latency_ms"]["median"] > 0
