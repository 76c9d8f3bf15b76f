"""The wheel on a board: built from this tree, installed into a fresh venv with only the
runtime packages (no torch, no checkout), `edgeprune profile` / `check` find the built-in
targets from an empty folder. Slow (a wheel build and a venv, ~30 s); skipped only when pip
cannot install the runtime packages."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
# What the build reads: pyproject.toml (readme = README.md), the package, the data-files folders
SOURCES = ("pyproject.toml", "README.md", "edgeprune", "targets", "calibration")
RUNTIME_PACKAGES = ("onnxruntime", "onnx", "numpy", "click", "tqdm")
PIP = ("-m", "pip", "--disable-pip-version-check", "--no-input")

pytestmark = pytest.mark.slow


def _run(cmd, timeout=300, **kwargs):
    return subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=timeout, check=False,
                          **kwargs)


def _tail(proc, lines=15):
    return "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-lines:])


def _clean_env(**extra):
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "EDGEPRUNE_TARGETS", "EDGEPRUNE_CALIBRATION", "VIRTUAL_ENV")}
    env["PYTHONNOUSERSITE"] = "1"
    env.update(extra)
    return env


@pytest.fixture(scope="session")
def wheel(tmp_path_factory):
    """The wheel `pip wheel . --no-deps` builds, from a copy of the tree (the build writes
    build/ and *.egg-info, which must not land in a working tree others use)."""
    root = tmp_path_factory.mktemp("wheel")
    src, dist = root / "src", root / "dist"
    src.mkdir()
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
    for name in SOURCES:
        path = REPO / name
        if path.is_dir():
            shutil.copytree(path, src / name, ignore=ignore)
        else:
            shutil.copy2(path, src / name)
    build = _run([sys.executable, *PIP, "wheel", ".", "--no-deps", "-w", dist], cwd=src)
    if build.returncode != 0:
        # build isolation fetches setuptools from the index; without one, build with this venv's
        isolated = _tail(build)
        build = _run([sys.executable, *PIP, "wheel", ".", "--no-deps", "--no-build-isolation", "-w", dist], cwd=src)
        assert build.returncode == 0, f"pip wheel failed:\n{isolated}\n--- without build isolation:\n{_tail(build)}"
    (whl,) = dist.glob("edgeprune-*.whl")
    return whl


@pytest.fixture(scope="session")
def board(wheel, tmp_path_factory):
    """A fresh venv with the wheel (--no-deps) and only the runtime packages; its bin folder."""
    venv = tmp_path_factory.mktemp("board") / "venv"
    made = _run([sys.executable, "-m", "venv", venv])
    if made.returncode != 0:
        pytest.skip(f"python -m venv failed, cannot test the installed wheel:\n{_tail(made)}")
    bin_dir = venv / ("Scripts" if os.name == "nt" else "bin")
    python = bin_dir / "python"
    own = _run([python, *PIP, "install", "-q", "--no-deps", wheel], env=_clean_env())
    assert own.returncode == 0, f"installing the wheel itself failed:\n{_tail(own)}"
    deps = _run([python, *PIP, "install", "-q", *RUNTIME_PACKAGES], env=_clean_env())
    if deps.returncode != 0:
        pytest.skip(f"pip could not install {' '.join(RUNTIME_PACKAGES)} into a fresh venv "
                    f"(no package index reachable?):\n{_tail(deps)}")
    return bin_dir


def test_wheel_carries_targets_and_manifests(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    data = "edgeprune-0.1.0.data/data/share/edgeprune"
    for kind in ("targets", "calibration"):
        shipped = sorted(Path(n).name for n in names if Path(n).parent.as_posix() == f"{data}/{kind}")
        assert shipped == sorted(p.name for p in (REPO / kind).glob("*.toml")), kind
    # the example image-folder manifest's images, at the same path relative to it
    images = [n for n in names if Path(n).parent.as_posix() == f"{data}/calibration/example-images"]
    assert len(images) == len(list((REPO / "calibration" / "example-images").glob("*.png"))) == 96
    assert not any(n.startswith(("targets/", "calibration/")) for n in names)  # nothing at site-packages top level


def test_profile_and_check_from_an_empty_folder(board, tmp_path, onnx_models):
    (tmp_path / "model").mkdir()
    model = onnx_models.tiny_cnn(tmp_path / "model" / "tiny.onnx")
    work = tmp_path / "work"
    work.mkdir()
    env = _clean_env()
    code = ("import sys, edgeprune, edgeprune.targets as t, edgeprune.quant.calibration as c; "
            "print(edgeprune.__file__); print(t.builtin_dir('targets')); "
            "print(c.find_manifest('fashion-mnist')); print('torch' in sys.modules)")
    where = _run([board / "python", "-c", code], cwd=work, env=env)
    assert where.returncode == 0, _tail(where)
    package, targets, manifest, torch_loaded = where.stdout.split("\n")[:4]
    venv = board.parent.resolve()
    assert Path(package).resolve().is_relative_to(venv), package  # the installed copy, not this checkout
    assert Path(targets) == venv / "share" / "edgeprune" / "targets"
    assert Path(manifest) == venv / "share" / "edgeprune" / "calibration" / "fashion-mnist.toml"
    assert torch_loaded == "False"

    edgeprune = board / "edgeprune"
    profile = _run([edgeprune, "profile", model, "--target", "x86-ort-1t", "--runs", "3", "--warmup", "1",
                    "--json", "p.json", "--no-progress"], cwd=work, env=env)
    assert profile.returncode == 0, _tail(profile)
    report = json.loads((work / "p.json").read_text())
    assert (report["target"], report["runtime"], report["threads"], report["runs"]) == ("x86-ort-1t", "ort", 1, 3)
    check = _run([edgeprune, "check", "p.json", "--target", "x86-ort-1t"], cwd=work, env=env)
    assert check.returncode == 0, _tail(check)
    assert "target x86-ort-1t: 1 passed, 0 failed" in check.stdout

    unknown = _run([edgeprune, "profile", model, "--target", "x86-ort-9t"], cwd=work, env=env)
    assert unknown.returncode != 0
    assert "targets (current folder, missing)" in unknown.stderr + unknown.stdout
    assert str(venv / "share" / "edgeprune" / "targets") + " (built-in)" in unknown.stderr + unknown.stdout

    # a board's own target, in ./targets, is found by name before the built-ins
    (work / "targets").mkdir()
    text = (REPO / "targets" / "x86-ort-1t.toml").read_text()
    assert "runs = 200\nwarmup = 20" in text
    (work / "targets" / "x86-ort-1t.toml").write_text(text.replace("runs = 200\nwarmup = 20", "runs = 2\nwarmup = 0"))
    mine = _run([edgeprune, "profile", model, "--target", "x86-ort-1t", "--json", "mine.json", "--no-progress"],
                cwd=work, env=env)
    assert mine.returncode == 0, _tail(mine)
    assert json.loads((work / "mine.json").read_text())["runs"] == 2  # the profile defaults of ./targets' copy
