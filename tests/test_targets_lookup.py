"""Where a bare target / calibration manifest name is found: ./targets (./calibration), then each
folder of $EDGEPRUNE_TARGETS ($EDGEPRUNE_CALIBRATION), then the built-ins; a path is read as is;
errors list what was searched."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import edgeprune.targets as targets_module
from edgeprune.quant.calibration import (
    BUILTIN_DIR as CALIBRATION_BUILTIN,
)
from edgeprune.quant.calibration import (
    CalibrationError,
    find_manifest,
    list_manifests,
    load_manifest,
    manifest_dirs,
)
from edgeprune.targets import (
    BUILTIN_DIR,
    TargetError,
    builtin_dir,
    list_targets,
    load_target,
    target_dirs,
)

REPO = Path(__file__).resolve().parent.parent

TARGET = """\
name = "{name}"
description = "{description}"
align = 8

[runtime]
name = "ort"
threads = 1
"""

MANIFEST = """\
description = "{description}"

[source]
kind = "fashion-mnist"

[samples]
count = {count}
"""


def target_file(folder: Path, name: str, description: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.toml"
    path.write_text(TARGET.format(name=name, description=description))
    return path


def manifest_file(folder: Path, name: str, count: int) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.toml"
    path.write_text(MANIFEST.format(description=f"{name} from {folder.name}", count=count))
    return path


@pytest.fixture
def elsewhere(tmp_path, monkeypatch):
    """An empty working folder, no $EDGEPRUNE_TARGETS / $EDGEPRUNE_CALIBRATION."""
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    monkeypatch.delenv("EDGEPRUNE_TARGETS", raising=False)
    monkeypatch.delenv("EDGEPRUNE_CALIBRATION", raising=False)
    return work


# ---- targets ---------------------------------------------------------------------------


def test_builtins_are_the_checkout_folders():
    assert BUILTIN_DIR == REPO / "targets" and builtin_dir("targets") == BUILTIN_DIR
    assert CALIBRATION_BUILTIN == REPO / "calibration"


def test_builtin_targets_found_from_any_folder(elsewhere):
    assert target_dirs() == [elsewhere / "targets", BUILTIN_DIR]
    target = load_target("x86-ort-1t")
    assert Path(target.source).resolve() == BUILTIN_DIR / "x86-ort-1t.toml"
    assert {"x86-ort-1t", "arm64-ort", "ci-ort"} <= set(list_targets())


def test_current_folder_then_env_folders_then_builtins(elsewhere, tmp_path, monkeypatch):
    env_a, env_b = tmp_path / "env-a", tmp_path / "env-b"
    target_file(env_a, "x86-ort-1t", "from env-a")
    target_file(env_a, "only-a", "from env-a")
    target_file(env_b, "only-a", "from env-b")
    target_file(env_b, "only-b", "from env-b")
    monkeypatch.setenv("EDGEPRUNE_TARGETS", os.pathsep.join([str(env_a), "", str(env_b)]))
    assert target_dirs() == [elsewhere / "targets", env_a, env_b, BUILTIN_DIR]
    assert load_target("x86-ort-1t").description == "from env-a"  # $EDGEPRUNE_TARGETS before built-ins
    assert load_target("only-a").description == "from env-a"  # its folders in order
    assert load_target("only-b").description == "from env-b"
    assert load_target("arm64-ort").align == 8  # still the built-in

    target_file(elsewhere / "targets", "x86-ort-1t", "from cwd")
    target_file(elsewhere / "targets", "only-b", "from cwd")
    assert load_target("x86-ort-1t").description == "from cwd"  # ./targets first of all
    assert load_target("only-b").description == "from cwd"
    assert load_target("only-a").description == "from env-a"
    names = list_targets()
    assert {"only-a", "only-b", "x86-ort-1t", "ci-ort"} <= set(names) and len(names) == len(set(names))


def test_a_path_is_read_as_is(elsewhere, tmp_path):
    target_file(elsewhere / "targets", "x86-ort-1t", "from cwd")
    path = target_file(tmp_path / "mine", "x86-ort-1t", "by path")
    assert load_target(str(path)).description == "by path"
    assert load_target(path).description == "by path"
    assert load_target("targets/x86-ort-1t.toml").description == "from cwd"  # relative to the current folder
    with pytest.raises(TargetError, match=r"target file not found: .*nowhere\.toml"):
        load_target("nowhere.toml")


def test_unknown_target_lists_what_was_searched(elsewhere, tmp_path, monkeypatch):
    with pytest.raises(TargetError) as err:
        load_target("x86-ort-9t")
    text = str(err.value)
    assert text.startswith("unknown target 'x86-ort-9t'; available: ")
    assert "x86-ort-1t" in text and "targets (current folder, missing)" in text
    assert f"{BUILTIN_DIR} (built-in)" in text and "$EDGEPRUNE_TARGETS is not set" in text

    env = tmp_path / "env"
    target_file(env, "mine", "from env")
    monkeypatch.setenv("EDGEPRUNE_TARGETS", os.pathsep.join([str(env), str(tmp_path / "gone")]))
    with pytest.raises(TargetError) as err:
        load_target("x86-ort-9t")
    text = str(err.value)
    assert "mine" in text and f"{env} ($EDGEPRUNE_TARGETS)" in text
    assert f"{tmp_path / 'gone'} ($EDGEPRUNE_TARGETS, missing)" in text and "is not set" not in text


def test_checkout_current_folder_is_the_builtin_folder_once(monkeypatch):
    monkeypatch.chdir(REPO)
    monkeypatch.delenv("EDGEPRUNE_TARGETS", raising=False)
    assert target_dirs() == [REPO / "targets"]
    with pytest.raises(TargetError, match=r"searched targets \(current folder, built-in\)"):
        load_target("x86-ort-9t")


def test_installed_copy_is_found_without_a_checkout(tmp_path, monkeypatch):
    """A wheel installs targets/ under share/edgeprune/ (pyproject data-files); `pip install
    --target DIR` puts that folder next to the package."""
    import importlib.metadata

    installed = tmp_path / "site"
    (installed / "edgeprune").mkdir(parents=True)
    target_file(installed / "share" / "edgeprune" / "targets", "board", "installed")
    monkeypatch.setattr(targets_module, "_CHECKOUT", installed)
    monkeypatch.setattr(importlib.metadata, "files", lambda name: [])
    builtin_dir.cache_clear()
    try:
        assert builtin_dir("targets") == installed / "share" / "edgeprune" / "targets"
    finally:
        builtin_dir.cache_clear()  # the next call, after monkeypatch restores _CHECKOUT, finds the checkout again


# ---- calibration manifests ---------------------------------------------------------------


def test_builtin_manifests_found_from_any_folder(elsewhere):
    assert manifest_dirs() == [elsewhere / "calibration", CALIBRATION_BUILTIN]
    assert find_manifest("fashion-mnist") == CALIBRATION_BUILTIN / "fashion-mnist.toml"
    assert {"fashion-mnist", "foolbox-imagenet", "image-folder-example"} <= set(list_manifests())


def test_manifest_order_current_folder_env_builtins(elsewhere, tmp_path, monkeypatch):
    env_a, env_b = tmp_path / "cal-a", tmp_path / "cal-b"
    manifest_file(env_a, "fashion-mnist", 7)
    manifest_file(env_b, "fashion-mnist", 8)
    manifest_file(env_b, "only-b", 9)
    monkeypatch.setenv("EDGEPRUNE_CALIBRATION", os.pathsep.join([str(env_a), str(env_b)]))
    assert manifest_dirs() == [elsewhere / "calibration", env_a, env_b, CALIBRATION_BUILTIN]
    assert load_manifest("fashion-mnist").count == 7
    assert load_manifest("only-b").count == 9
    assert load_manifest("foolbox-imagenet").path == CALIBRATION_BUILTIN / "foolbox-imagenet.toml"
    manifest_file(elsewhere / "calibration", "fashion-mnist", 6)
    assert load_manifest("fashion-mnist").count == 6
    assert {"only-b", "fashion-mnist", "foolbox-imagenet"} <= set(list_manifests())


def test_manifest_path_as_is_and_errors_list_what_was_searched(elsewhere, tmp_path, monkeypatch):
    path = manifest_file(tmp_path / "mine", "fashion-mnist", 5)
    assert load_manifest(str(path)).count == 5
    with pytest.raises(CalibrationError, match=r"'gone\.toml' not found \(a path is read as is"):
        find_manifest("gone.toml")
    monkeypatch.setenv("EDGEPRUNE_CALIBRATION", str(tmp_path / "mine"))
    with pytest.raises(CalibrationError) as err:
        find_manifest("gone")
    text = str(err.value)
    assert "one of: fashion-mnist, foolbox-imagenet, image-folder-example" in text
    assert "calibration (current folder, missing)" in text
    assert f"{tmp_path / 'mine'} ($EDGEPRUNE_CALIBRATION)" in text and f"{CALIBRATION_BUILTIN} (built-in)" in text
