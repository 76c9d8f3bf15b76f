"""OpenVINO telemetry is off in every command: an export to OpenVINO IR, run in a fresh process
with HOME in a temporary folder, writes no ~/intel, starts no child process and opens no socket.
A control run with the opt-out disabled (EDGEPRUNE_OPENVINO_TELEMETRY=1) shows that the same
probes see OpenVINO's telemetry when it is on."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytest.importorskip("openvino")
pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

TESTS = Path(__file__).resolve().parents[1]

# Records every child process (multiprocessing, subprocess, fork) and every socket connect
# (refused), then runs the CLI in this process.
PROBE = textwrap.dedent(
    """
    import json, multiprocessing, os, socket, subprocess, sys

    events = []
    _start = multiprocessing.Process.start

    def start(self, *a, **k):
        events.append(["process", repr(getattr(self, "_target", None))])
        return _start(self, *a, **k)

    multiprocessing.Process.start = start
    _popen = subprocess.Popen.__init__

    def popen(self, args, *a, **k):
        events.append(["popen", repr(args)])
        return _popen(self, args, *a, **k)

    subprocess.Popen.__init__ = popen
    os.register_at_fork(before=lambda: events.append(["fork", ""]))

    def connect(self, address):
        events.append(["connect", repr(address)])
        raise OSError("network blocked in this test")

    socket.socket.connect = connect
    socket.socket.connect_ex = connect
    from edgeprune.cli import main

    try:
        main.main(args=sys.argv[1:], prog_name="edgeprune", standalone_mode=False)
        code = 0
    except SystemExit as exit:
        code = exit.code
    print("PROBE " + json.dumps({"code": code, "events": events}))
    """
)

# files/staging.py resolves libc with ctypes.util.find_library("c") at import, which runs
# `/sbin/ldconfig -p`: edgeprune's own child process, not telemetry (see the issue 14 report).
KNOWN = ("ldconfig",)


def _export(tmp_path: Path, name: str, env_extra: dict[str, str]) -> tuple[dict, Path]:
    home = tmp_path / f"home-{name}"
    home.mkdir()
    drop = ("CI", "TF_BUILD", "JENKINS_URL", "EDGEPRUNE_OPENVINO_TELEMETRY")  # CI=true would hide the control's telemetry
    env = {k: v for k, v in os.environ.items() if k not in drop}
    env.update(HOME=str(home), PYTHONPATH=os.pathsep.join([str(TESTS), env.get("PYTHONPATH", "")]), **env_extra)
    args = ["export", "factories:tiny_factory", "--input-shape", "1x3x8x8", "--mean", "0.5,0.5,0.5",
            "--std", "0.25,0.25,0.25", "--format", "onnx", "--format", "openvino", "--out", str(tmp_path / f"out-{name}")]
    proc = subprocess.run([sys.executable, "-c", PROBE, *args], env=env, cwd=tmp_path, capture_output=True,
                          text=True, timeout=300)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("PROBE ")]
    assert lines, proc.stdout + proc.stderr
    return json.loads(lines[-1][len("PROBE "):]), home


def test_export_to_openvino_writes_no_telemetry(tmp_path):
    result, home = _export(tmp_path, "off", {})
    assert result["code"] == 0, result
    assert (tmp_path / "out-off" / "model.xml").is_file()
    assert not (home / "intel").exists(), sorted(p.name for p in (home / "intel").iterdir())
    children = [e for e in result["events"] if e[0] in ("process", "popen", "fork")
                and not any(k in e[1] for k in KNOWN)]
    assert children == []
    assert [e for e in result["events"] if e[0] == "connect"] == []


def test_the_probes_see_telemetry_when_it_is_on(tmp_path):
    """Control: with the opt-out disabled, OpenVINO writes ~/intel and sends from a child process."""
    result, home = _export(tmp_path, "on", {"EDGEPRUNE_OPENVINO_TELEMETRY": "1"})
    assert result["code"] == 0, result
    assert (home / "intel").is_dir()
    assert any(e[0] == "process" for e in result["events"]), result["events"]


def test_disable_is_idempotent_and_declines_consent():
    pytest.importorskip("openvino_telemetry")
    from openvino_telemetry.utils.opt_in_checker import ConsentCheckResult, OptInChecker

    from edgeprune.runtime.telemetry import disable

    assert disable() and disable()
    assert OptInChecker().check(enable_opt_in_dialog=False, disable_in_ci=False) == ConsentCheckResult.DECLINED
