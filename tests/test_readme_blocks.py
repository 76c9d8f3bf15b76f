"""Every `edgeprune` command in the README's shell blocks runs as written, in order, at tiny
sizes (fewer epochs, images and timing runs; the pipeline configs shrunk the same way).

`make` lines are not run here: `make demo` / `make test` would recurse into this suite, and the
device targets (`make x86-ort-1t`, ...) take minutes of resnet18 profiling; CI runs
`make ci-latency` before the tests, and the closing notes record the device targets' runs.
A budget verdict may fail at these sizes (exit 1 from `check` and `pipeline` is a verdict, not
a broken command); any other non-zero exit, an `Error:` line or a traceback fails the test.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from edgeprune.data.fashion_mnist import DEFAULT_ROOT, FILES

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
REAL = all((DEFAULT_ROOT / name).is_file() for pair in FILES.values() for name in pair)
TINY_DATA = "--train-subset 256 --test-subset 128"

# (pattern, replacement) applied to each command: the tiny sizes
SHRINK = [
    (r"--epochs \d+", f"--epochs 1 {TINY_DATA}"),
    (r"--finetune-epochs \d+", f"--finetune-epochs 1 {TINY_DATA}"),
    (r"^(edgeprune profile .*)$", r"\1 --runs 3 --warmup 1"),
    (r"^(edgeprune compare .*)$", r"\1 --rounds 3 --warmup 1 --no-progress"),
    (r"^(edgeprune eval .*)$", r"\1 --test-subset 256"),
    (r"^(edgeprune latency-table .*)$", r"\1 --points 2 --runs 2 --warmup 0 --checks 0 --no-progress"),
    (r"\.venv/bin/edgeprune", str(BIN / "edgeprune")),
    (r"^torchrun ", f"{BIN / 'torchrun'} "),
]
# the pipeline configs, shrunk the same way (key = value lines)
CONFIG_SHRINK = [
    (r"(?m)^epochs = \d+", "epochs = 1"),
    (r"(?m)^train_subset = \d+", "train_subset = 256"),
    (r"(?m)^test_subset = \d+", "test_subset = 128"),
    (r"(?m)^runs = \d+", "runs = 5"),
    (r"(?m)^warmup = \d+", "warmup = 1"),
]


def readme_commands() -> list[str]:
    """The commands of the README's ```bash / ```sh blocks, in order, continuations joined."""
    text = (ROOT / "README.md").read_text()
    commands = []
    for block in re.findall(r"```(?:bash|sh)\n(.*?)```", text, flags=re.S):
        joined = re.sub(r"\\\n\s*", " ", block)
        for line in joined.splitlines():
            line = line.split("  #")[0].split(" # ")[0].strip()
            if line and not line.startswith("#"):
                commands.append(line)
    return commands


def shrink(command: str, work: Path) -> str:
    for pattern, replacement in SHRINK:
        command = re.sub(pattern, replacement, command)
    for config in re.findall(r"examples/[\w.-]+\.toml", command):
        text = (ROOT / config).read_text()
        for pattern, replacement in CONFIG_SHRINK:
            text = re.sub(pattern, replacement, text)
        if "[data]" in text and "train_subset" not in text:
            text = text.replace("[data]\n", f"[data]\ntrain_subset = 256\ntest_subset = 128\n", 1)
        (work / config).write_text(text)
    return command


def _in_process(args: list[str], work: Path, monkeypatch) -> tuple[int, str]:
    """``edgeprune ARGS`` through click in this process (what the console script runs, without
    ~8 s of interpreter and torch start-up per command); torch's thread count is restored."""
    import torch
    from click.testing import CliRunner

    from edgeprune.cli import main

    threads = torch.get_num_threads()
    monkeypatch.chdir(work)
    try:
        result = CliRunner().invoke(main, args, prog_name="edgeprune")
    finally:
        torch.set_num_threads(threads)
        monkeypatch.undo()
    output = result.output
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        import traceback

        output += "".join(traceback.format_exception(result.exception))
    return result.exit_code, output


def test_readme_commands_are_found():
    commands = readme_commands()
    assert any(c.startswith("edgeprune prune") for c in commands)
    assert any(c.startswith("edgeprune pipeline") for c in commands)
    assert any(c.startswith("edgeprune quantize") for c in commands)


@pytest.mark.slow
@pytest.mark.skipif(not REAL, reason="the README's commands train on Debian's dataset-fashion-mnist")
def test_every_readme_command_runs_as_written(tmp_path, monkeypatch):
    work = tmp_path / "work"
    work.mkdir()
    for folder in ("examples", "calibration", "targets"):
        shutil.copytree(ROOT / folder, work / folder)
    env = dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}", OMP_NUM_THREADS="1")
    ran = []
    for command in readme_commands():
        if command.startswith("make "):
            continue
        line = shrink(command, work)
        started = time.perf_counter()
        if line.startswith("edgeprune ") and not set(line) & set("|;&<>$`"):
            returncode, output = _in_process(shlex.split(line)[1:], work, monkeypatch)
        else:
            done = subprocess.run(["bash", "-c", line], cwd=work, env=env, capture_output=True, text=True, timeout=600)
            returncode, output = done.returncode, done.stdout + done.stderr
        verdict_only = returncode == 1 and (" check " in f" {line} " or "pipeline" in line)
        assert returncode == 0 or verdict_only, f"{command}\n(ran: {line})\nexit {returncode}\n{output[-3000:]}"
        assert "Traceback" not in output and "Error:" not in output, f"{command}\n{output[-3000:]}"
        ran.append(command)
        print(f"{time.perf_counter() - started:7.1f} s  {command[:100]}")
    assert len(ran) >= 20, ran
