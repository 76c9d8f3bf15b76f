"""A pipeline process killed (SIGKILL) in the middle of training resumes to the result of an
uninterrupted run, without redoing the stages that had finished."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from pipeline_helpers import write_tiny

pytestmark = [pytest.mark.slow, pytest.mark.skipif(os.name != "posix", reason="SIGKILL")]


def _cmd(config: Path, out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "edgeprune", "pipeline", str(config), "--out", str(out),
            "--threads", "1", "--no-progress", *extra]


def _state(path: Path):
    import torch

    return torch.load(path, weights_only=True)


def test_killed_during_training_resumes_to_the_same_result(tiny_run, tmp_path):
    import torch

    _, ref_out, _ = tiny_run  # the same config, run without interruption (1 thread)
    config = write_tiny(tmp_path)
    out = tmp_path / "out"
    proc = subprocess.Popen(_cmd(config, out), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    checkpoint, deadline = out / ".prune.partial" / "checkpoint.pt", time.monotonic() + 600
    while not checkpoint.is_file():  # the first of the two prune epochs has finished
        assert proc.poll() is None, proc.stdout.read()
        assert time.monotonic() < deadline
        time.sleep(0.002)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    proc.stdout.close()
    assert proc.returncode == -signal.SIGKILL
    assert not (out / "prune").exists(), "the prune stage was published before the kill"
    assert (out / "dense" / "stage.json").is_file()

    refused = subprocess.run(_cmd(config, out), capture_output=True, text=True, timeout=600)
    assert refused.returncode == 2 and "pass --resume" in refused.stdout + refused.stderr  # nothing thrown away

    resumed = subprocess.run(_cmd(config, out, "--resume"), capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert "[1/8] dense ... skipped (unchanged)" in resumed.stdout
    assert "[2/8] prune ... resuming" in resumed.stdout
    metrics = json.loads((out / "prune" / "metrics.json").read_text())
    ref_metrics = json.loads((ref_out / "prune" / "metrics.json").read_text())
    assert metrics["complete"] and len(metrics["epochs"]) == 2
    for key in ("test_accuracy", "test_loss"):
        assert [e[key] for e in metrics["epochs"]] == [e[key] for e in ref_metrics["epochs"]], key
    for stage in ("dense", "prune"):
        a, b = _state(out / stage / "model.pt"), _state(ref_out / stage / "model.pt")
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), f"{stage} weights differ"
        assert (out / stage / "model.pt").read_bytes() == (ref_out / stage / "model.pt").read_bytes()
    report, ref_report = (json.loads((o / "report.json").read_text()) for o in (out, ref_out))
    for variant, v in ref_report["variants"].items():
        for key in ("accuracy", "flops", "params", "size_bytes"):
            assert report["variants"][variant][key] == v[key], (variant, key)
