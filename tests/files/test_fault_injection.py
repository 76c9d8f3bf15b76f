"""Fault injection: a re-run killed (SIGKILL) at every file-system publish step of prune,
export, quantize and a pipeline stage leaves the folder holding the previous good result or the
new complete one, never a mix; the next run (no fault) takes over the dead run's lock and
completes.

The hook is `edgeprune.files.faults.publish_step`: ``EDGEPRUNE_FAULT_LOG`` lists the steps of a
run, ``EDGEPRUNE_FAULT_AT=N`` kills the process just before its N-th step.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sys
from pathlib import Path
from typing import Callable

import pytest

from edgeprune.files.hashing import sha256_file
from edgeprune.files.manifest import read_manifest

pytestmark = pytest.mark.slow
TESTS = Path(__file__).resolve().parents[1]


def _warm_imports() -> None:
    import importlib

    for name in ("torch_pruning", "onnx", "onnxruntime", "openvino", "onnxsim", "edgeprune.cli",
                 "edgeprune.pruning.job", "edgeprune.export.exporter", "edgeprune.quant.quantize",
                 "edgeprune.pipeline.runner", "edgeprune.profile.compare"):
        try:
            importlib.import_module(name)
        except ImportError:
            pass


class Ran:
    def __init__(self, returncode: int, output: str) -> None:
        self.returncode, self.stdout, self.stderr = returncode, output, ""


def _run(args: list[str], cwd: Path, **env: str) -> Ran:
    """``edgeprune ARGS`` in a forked child of this process (no interpreter or torch start-up:
    ~0.5 s instead of ~5 s a run), with ``env`` set. returncode: the exit code, or -signal."""
    import torch  # imported once, before forking: each child starts warm

    _warm_imports()

    log = cwd / f".run-{os.getpid()}.log"
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        code = 1
        try:
            fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            os.dup2(fd, 1)
            os.dup2(fd, 2)
            os.chdir(cwd)
            for key in [k for k in os.environ if k.startswith("EDGEPRUNE_FAULT")]:
                del os.environ[key]
            os.environ.update(env)
            import tempfile

            # a killed run cannot remove its temporary folders: keep them under the test's tmp_path
            tempfile.tempdir = str(cwd / ".tmp")
            os.makedirs(tempfile.tempdir, exist_ok=True)
            torch.set_num_threads(1)  # a forked OpenMP pool is not usable; one thread needs none
            for folder in (str(TESTS / "pipeline"), str(TESTS)):
                if folder not in sys.path:
                    sys.path.insert(0, folder)
            from edgeprune.cli import main

            main.main(args=args, prog_name="edgeprune", standalone_mode=True)
            code = 0
        except SystemExit as exit_:
            code = exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 1)
        except BaseException:  # noqa: BLE001 - reported through the log
            import traceback

            traceback.print_exc()
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
    import time

    deadline = time.monotonic() + 300
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            raise AssertionError(f"edgeprune {' '.join(args)} did not finish in 300 s")
        time.sleep(0.01)
    output = log.read_text(errors="replace")
    log.unlink()
    code = -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)
    return Ran(code, output)


def _snapshot(folder: Path) -> dict[str, str]:
    """relative path -> sha256 of every file (what a reader of the folder can see)."""
    if not folder.exists():
        return {}
    return {str(p.relative_to(folder)): sha256_file(p) for p in sorted(folder.rglob("*")) if p.is_file()}


VOLATILE = {"report.json", "export.json", "quantize.json", "manifest.json", "stage.json", "metrics.json",
            "checkpoint.pt"}  # timings (a checkpoint holds the epochs' metrics; model.pt is compared)


def _result(folder: Path) -> dict[str, str]:
    """What a complete folder holds: its marker verifies (manifest.json: every file's bytes and
    sha256; stage.json: every output's sha256), then the files, the deterministic ones by hash.
    A mix of two runs fails the verification."""
    files = _snapshot(folder)
    if "stage.json" in files:
        record = json.loads((folder / "stage.json").read_text())
        assert {k: files.get(k) for k in record["outputs"]} == record["outputs"], f"{folder}: outputs do not verify"
    else:
        read_manifest(folder)
    return {name: ("" if Path(name).name in VOLATILE else sha) for name, sha in files.items()}


def _steps(args: list[str], cwd: Path) -> list[str]:
    log = cwd / "steps.log"
    log.unlink(missing_ok=True)
    done = _run(args, cwd, EDGEPRUNE_FAULT_LOG=str(log))
    assert done.returncode == 0, done.stdout + done.stderr
    return log.read_text().splitlines()


def _kill_at_every_step(cwd: Path, out: Path, good: list[str], new: list[str], watched: Path | None = None,
                        last_step: str | None = None, rerun: Callable[[], list[str]] | None = None):
    """Run ``good`` (result A), then learn the publish steps of ``new`` (result B); for every
    step k: restore A, run ``new`` killed at step k, and assert ``watched`` (default ``out``)
    is A or B exactly; then a clean run recovers to B. Returns (steps, outcomes)."""
    watched = watched or out
    done = _run(good, cwd)
    assert done.returncode == 0, done.stdout + done.stderr
    backup = cwd / "A"
    shutil.copytree(out, backup, symlinks=True)
    a = _snapshot(watched)
    steps = _steps(new, cwd)
    assert _snapshot(watched) != a and steps, "the second run must change the result"
    b_result = _result(watched)
    if last_step is not None:  # only the steps up to and including the one labelled so
        steps = steps[:next(i for i, label in enumerate(steps, 1) if last_step in label)]
    outcomes = []
    for k in range(1, len(steps) + 1):
        shutil.rmtree(out)
        for leftover in out.parent.glob(f".{out.name}.*"):  # start each trial from the clean A
            shutil.rmtree(leftover) if leftover.is_dir() else leftover.unlink()
        shutil.copytree(backup, out, symlinks=True)
        killed = _run(new, cwd, EDGEPRUNE_FAULT_AT=str(k))
        assert killed.returncode == -signal.SIGKILL, (k, steps[k - 1], killed.stdout + killed.stderr)
        if _snapshot(watched) == a:
            outcomes.append("previous")
        else:
            assert _result(watched) == b_result, f"killed before step {k} ({steps[k - 1]}): neither result"
            outcomes.append("new")
        again = _run(rerun() if rerun else new, cwd)  # the dead run's lock is stale: taken over
        assert again.returncode == 0, (k, again.stdout + again.stderr)
        assert _result(watched) == b_result, f"the re-run after a kill before step {k} did not recover"
    print(f"{len(steps)} publish steps: " + ", ".join(f"{k}:{o}" for k, o in enumerate(outcomes, 1)))
    return steps, outcomes


def test_prune_killed_at_every_publish_step(tmp_path):
    base = ["prune", "pipeline_helpers:small_cnn", "--method", "l1", "--align", "1", "--out", "p"]
    steps, outcomes = _kill_at_every_step(tmp_path, tmp_path / "p", [*base, "--budget", "flops=0.5"],
                                          [*base, "--budget", "flops=0.7"])
    assert any("swap" in s for s in steps) and outcomes[0] == "previous" and outcomes[-1] == "new"
    read_manifest(tmp_path / "p", kinds=("prune",))  # the recovered folder verifies
    assert not list(tmp_path.glob(".p.*")), "no lock or build folder left behind"


def _pruned(tmp_path: Path) -> None:
    done = _run(["prune", "pipeline_helpers:small_cnn", "--method", "l1", "--budget", "flops=0.5", "--align", "1",
                 "--mean", "0.5,0.5,0.5", "--std", "0.25,0.25,0.25", "--out", "p"], tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr


def test_export_killed_at_every_publish_step(tmp_path):
    """A: ONNX + OpenVINO IR; B: ONNX only. A kill between renames must never leave one run's
    model.onnx next to the other's model.xml."""
    pytest.importorskip("openvino")
    _pruned(tmp_path)
    base = ["export", "p", "--out", "e"]
    steps, outcomes = _kill_at_every_step(tmp_path, tmp_path / "e", [*base, "--format", "onnx", "--format", "openvino"],
                                          [*base, "--format", "onnx"])
    assert "previous" in outcomes and "new" in outcomes
    assert sorted(p.name for p in (tmp_path / "e").iterdir()) == ["export.json", "manifest.json", "model.onnx"]
    read_manifest(tmp_path / "e", kinds=("export",))


def test_quantize_killed_at_every_publish_step(tmp_path):
    sys.path.insert(0, str(TESTS / "quant"))
    import quant_helpers as qh

    _pruned(tmp_path)
    done = _run(["export", "p", "--out", "e", "--format", "onnx"], tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    calib = qh.folder_manifest(tmp_path, qh.image_folder(tmp_path / "images", count=16), count=8, holdout=8)
    base = ["quantize", "e/model.onnx", "--calib", str(calib), "--no-openvino", "--no-progress", "--out", "q"]
    steps, outcomes = _kill_at_every_step(tmp_path, tmp_path / "q", [*base, "--method", "minmax"],
                                          [*base, "--method", "aciq"])
    assert "previous" in outcomes and "new" in outcomes
    assert json.loads((tmp_path / "q" / "quantize.json").read_text())["method"] == "aciq"
    read_manifest(tmp_path / "q", kinds=("quantize",))


PIPELINE = """\
name = "faults"
[model]
spec = "pipeline_helpers:small_cnn(num_classes=2)"
mean = [0.5, 0.5, 0.5]
std = [0.25, 0.25, 0.25]
[prune]
method = "l1"
budget = "{budget}"
[export]
formats = ["onnx"]
[targets]
names = ["x86-ort-1t"]
runs = 3
warmup = 1
"""


def test_pipeline_stage_killed_at_every_publish_step(tmp_path):
    """The re-run changes the prune budget: prune, export, profile and check are rebuilt. Killed
    at every publish step of the prune stage, its folder is the previous run's or the new one,
    whole (its stage.json verifies), and the next run completes."""
    (tmp_path / "a.toml").write_text(PIPELINE.format(budget="flops=0.5"))
    (tmp_path / "b.toml").write_text(PIPELINE.format(budget="flops=0.7"))
    args = ["pipeline", "{}", "--out", "run", "--no-progress"]
    good = [a.format("a.toml") for a in args]
    new = [a.format("b.toml") for a in args]
    steps, outcomes = _kill_at_every_step(tmp_path, tmp_path / "run", good, new, watched=tmp_path / "run" / "prune",
                                          last_step="remove previous prune")  # every step of the prune stage
    assert "remove previous prune" in steps[-1] and any("swap .prune.partial" in s for s in steps)
    assert "previous" in outcomes and "new" in outcomes
    for stage in ("prune", "export"):  # each published stage is whole
        record = json.loads((tmp_path / "run" / stage / "stage.json").read_text())
        assert _snapshot(tmp_path / "run" / stage).keys() >= set(record["outputs"])
    assert not [p.name for p in (tmp_path / "run").iterdir() if p.name.endswith(".partial")]


def test_train_killed_at_every_publish_step(tmp_path):
    from data_helpers import fake_fashion_mnist

    root = fake_fashion_mnist(tmp_path / "fmnist", n_train=64, n_test=32)
    base = ["train", "edgeprune:resnet20", "--data", "fashion-mnist", "--data-root", str(root), "--epochs", "1",
            "--batch-size", "32", "--no-progress", "--out", "t"]
    new = [*base, "--seed", "1"]
    interrupted = tmp_path / ".t.partial" / "checkpoint.pt"

    def rerun():  # killed after an epoch's checkpoint: the interrupted training is continued, never dropped
        return [*new, "--resume"] if interrupted.is_file() and not interrupted.with_name("manifest.json").is_file() else new

    steps, outcomes = _kill_at_every_step(tmp_path, tmp_path / "t", [*base, "--seed", "0"], new, rerun=rerun)
    assert outcomes[0] == "previous" and outcomes[-1] == "new"
    read_manifest(tmp_path / "t", kinds=("train",))
    assert not list(tmp_path.glob(".t.*")), "no lock or build folder left behind"
