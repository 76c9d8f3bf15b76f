"""Staging folders and --out locks: a failure leaves the previous result; a second writer is
refused naming the holder; a dead writer's lock is taken over; a crash between the two renames
of a swap is undone; files a user keeps in an artifact folder survive a re-run."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from click.testing import CliRunner

from edgeprune.files import staging as S
from edgeprune.files.staging import OutputError, OutputLock, Staging, lock_path, partial_dir, recover


def _publish(out, files: dict[str, str]):
    with Staging(out) as stage:
        for name, text in files.items():
            (stage.path / name).write_text(text)
        (stage.path / "manifest.json").write_text(json.dumps({"files": {n: {} for n in files}}))
        stage.publish(sorted(files), marker="manifest.json")


def test_a_failed_rebuild_leaves_the_previous_result(tmp_path):
    out = tmp_path / "out"
    _publish(out, {"model.onnx": "A", "export.json": "A"})
    with pytest.raises(RuntimeError):
        with Staging(out) as stage:
            (stage.path / "model.onnx").write_text("B, half written")
            raise RuntimeError("the export failed")
    assert (out / "model.onnx").read_text() == "A" and (out / "export.json").read_text() == "A"
    assert not partial_dir(out).exists() and not lock_path(out).exists()


def test_publish_replaces_the_whole_set(tmp_path):
    out = tmp_path / "out"
    _publish(out, {"model.onnx": "A", "model.xml": "A", "model.bin": "A"})
    _publish(out, {"model.onnx": "B"})
    assert sorted(p.name for p in out.iterdir()) == ["manifest.json", "model.onnx"]
    assert (out / "model.onnx").read_text() == "B"


def test_files_a_user_keeps_in_an_artifact_folder_survive(tmp_path):
    out = tmp_path / "out"
    _publish(out, {"model.onnx": "A"})
    (out / "notes.txt").write_text("mine")
    _publish(out, {"model.onnx": "B"})
    assert (out / "notes.txt").read_text() == "mine" and (out / "model.onnx").read_text() == "B"


def test_a_folder_that_is_not_an_artifact_is_never_swapped_away(tmp_path):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "data.csv").write_text("keep")
    _publish(out, {"model.onnx": "B"})
    assert (out / "data.csv").read_text() == "keep" and (out / "model.onnx").read_text() == "B"


def test_a_second_writer_is_refused_naming_the_holder(tmp_path):
    out = tmp_path / "out"
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        lock_path(out).write_text(json.dumps({"pid": holder.pid, "host": S.socket.gethostname(), "start": None,
                                              "since": "2026-12-02T00:00:00", "command": "edgeprune pipeline x.toml"}))
        with pytest.raises(OutputError) as err:
            with Staging(out):
                pass
        text = str(err.value)
        assert f"pid {holder.pid}" in text and "edgeprune pipeline x.toml" in text and str(lock_path(out)) in text
    finally:
        holder.kill()
        holder.wait()


def test_the_lock_of_a_dead_process_is_taken_over(tmp_path):
    out = tmp_path / "out"
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    lock_path(out).write_text(json.dumps({"pid": dead.pid, "host": S.socket.gethostname(), "start": None}))
    _publish(out, {"model.onnx": "B"})
    assert (out / "model.onnx").read_text() == "B" and not lock_path(out).exists()


def test_a_reused_pid_is_a_stale_lock(tmp_path):
    out = tmp_path / "out"
    if S._process_start(os.getpid()) is None:
        pytest.skip("no /proc: process start times unknown")
    lock_path(out).write_text(json.dumps({"pid": os.getpid(), "host": S.socket.gethostname(), "start": "1"}))
    _publish(out, {"model.onnx": "B"})  # this pid is alive, but it is not the process that locked
    assert (out / "model.onnx").read_text() == "B"


def test_the_lock_is_reentrant_within_a_process(tmp_path):
    out = tmp_path / "out"
    with OutputLock(out):
        with OutputLock(out):
            assert lock_path(out).exists()
        assert lock_path(out).exists()
    assert not lock_path(out).exists()


def test_a_crash_between_the_two_renames_is_undone(tmp_path, monkeypatch):
    """Without renameat2 the swap is two renames; killed between them, --out is missing and the
    previous folder is .OUT.old: the next reader or writer puts it back."""
    out = tmp_path / "out"
    _publish(out, {"model.onnx": "A"})
    os.rename(out, S._old_dir(out))  # the state a kill after the first rename leaves
    recover(out)
    assert (out / "model.onnx").read_text() == "A" and not S._old_dir(out).exists()


def test_the_swap_without_renameat2(tmp_path, monkeypatch):
    monkeypatch.setattr(S, "_EXCHANGE", None)
    out = tmp_path / "out"
    _publish(out, {"model.onnx": "A"})
    _publish(out, {"model.onnx": "B"})
    assert (out / "model.onnx").read_text() == "B" and not S._old_dir(out).exists()


def test_two_pipelines_on_one_out(tmp_path):
    """The second is refused (exit 2) naming the first (here pid 1, alive); the first's folders
    are untouched."""
    from edgeprune.cli import main

    sys.path.insert(0, str(os.path.join(os.path.dirname(__file__), "..", "pipeline")))
    from pipeline_helpers import write_tiny

    config = write_tiny(tmp_path)
    out = tmp_path / "out"
    (out / "dense").mkdir(parents=True)
    (out / "dense" / "model.pt").write_text("the first run's")
    lock_path(out).write_text(json.dumps({"pid": 1, "host": S.socket.gethostname(), "start": S._process_start(1),
                                          "command": "edgeprune pipeline first.toml"}))
    try:
        second = CliRunner().invoke(main, ["pipeline", str(config), "--out", str(out), "--no-progress"])
        assert second.exit_code == 2, second.output
        assert "in use by another edgeprune run (pid 1" in second.output and "first.toml" in second.output
        assert (out / "dense" / "model.pt").read_text() == "the first run's"
        assert sorted(p.name for p in out.iterdir()) == ["dense"]
    finally:
        lock_path(out).unlink()
