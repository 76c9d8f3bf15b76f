"""Targets: the shipped TOML files load, round-trip, and bad files fail naming file and field."""

from __future__ import annotations

import dataclasses

import pytest

from edgeprune.runtime.onnxruntime import OrtSettings
from edgeprune.runtime.openvino import OpenVINOSettings
from edgeprune.targets import (
    BUILTIN_DIR,
    TargetError,
    dump_target,
    list_targets,
    load_target,
    read_target_file,
    target_from_dict,
)

REQUIRED_TARGETS = {"x86-ort-1t", "x86-ort-2t", "x86-openvino-cpu", "arm64-ort", "ci-ort"}

GOOD = """\
name = "{name}"
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
max_ratio = 0.9
latency_ms = {{ tiny = 5.0 }}
"""


def write(tmp_path, text, name="t"):
    path = tmp_path / f"{name}.toml"
    path.write_text(text)
    return path


def test_shipped_targets_load():
    assert REQUIRED_TARGETS <= set(list_targets())
    for name in list_targets():
        target = load_target(name)
        assert target.name == name and target.description and target.align in (8, 16)
    ort1 = load_target("x86-ort-1t")
    assert ort1.runtime.name == "ort" and ort1.runtime.settings == OrtSettings(threads=1)
    assert load_target("x86-ort-2t").runtime.settings.threads == 2
    ov = load_target("x86-openvino-cpu").runtime.settings
    assert isinstance(ov, OpenVINOSettings)
    assert ov.precision == "f32" and ov.performance_hint == "LATENCY" and ov.device == "CPU"
    assert load_target("arm64-ort").align == 8
    ci = load_target("ci-ort")
    assert ci.budgets.max_ratio is not None and not ci.budgets.latency_ms


@pytest.mark.parametrize("name", sorted(REQUIRED_TARGETS))
def test_round_trip_through_toml(name, tmp_path):
    target = load_target(name)
    again = read_target_file(write(tmp_path, dump_target(target), name))
    assert again == target
    assert target_from_dict(target.to_dict()) == target


def test_load_by_path_and_env_dir(tmp_path, monkeypatch):
    path = write(tmp_path, GOOD.format(name="mine"), "mine")
    assert load_target(str(path)).budgets.latency_ms == {"tiny": 5.0}
    monkeypatch.setenv("EDGEPRUNE_TARGETS", str(tmp_path))
    assert "mine" in list_targets()
    assert load_target("mine").source.endswith("mine.toml")


def test_unknown_target_lists_available():
    with pytest.raises(TargetError, match=r"unknown target 'x86-ort-9t'; available: .*ci-ort.*x86-ort-1t"):
        load_target("x86-ort-9t")


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda s: s.replace("threads = 1", "threads = 'two'"), "t.toml: runtime.threads must be a positive integer, got 'two'"),
        (lambda s: s.replace("threads = 1", "thread = 1"), "t.toml: runtime.thread: unknown setting for runtime 'ort'"),
        (lambda s: s.replace('name = "ort"', 'name = "tflite"'), "t.toml: runtime.name must be one of openvino, ort, torch, got 'tflite'"),
        (lambda s: s.replace("align = 16", "align = 0"), "t.toml: align must be a positive integer, got 0"),
        (lambda s: s.replace("align = 16\n", ""), "t.toml: missing required key align"),
        (lambda s: s.replace("align = 16", "align = 16\nalign_to = 8"), "t.toml: unknown key align_to; allowed:"),
        (lambda s: s.replace("runs = 5", "run = 5"), "t.toml: unknown key profile.run; allowed: runs, warmup, batch"),
        (lambda s: s.replace("runs = 5", "runs = -1"), r"t.toml: profile.runs must be a positive integer, got -1"),
        (lambda s: s.replace("max_ratio = 0.9", "max_ration = 0.9"), "t.toml: unknown key budgets.max_ration"),
        (lambda s: s.replace("max_ratio = 0.9", "max_ratio = 0"), "t.toml: budgets.max_ratio must be a positive number, got 0"),
        (lambda s: s.replace("tiny = 5.0", 'tiny = "fast"'), "t.toml: budgets.latency_ms.tiny must be a positive number, got 'fast'"),
        (lambda s: s.replace('name = "t"', 'name = "other"'), "t.toml: name 'other' must match the file name 't'"),
        (lambda s: s.replace("[profile]", "[profile"), "t.toml: not valid TOML"),
        (lambda s: s.replace('name = "ort"\n', ""), "t.toml: missing required key runtime.name"),
        (lambda s: s + "\n[quantize]\nreduce_range = \"on\"\n",
         ("t.toml: quantize.reduce_range must be true (the device's int8 kernels saturate with 8-bit weights: "
          "x86 without VNNI) or false (VNNI, AMX, arm64), got 'on'")),
        (lambda s: s + "\n[quantize]\nreduce_range = 1\n", "t.toml: quantize.reduce_range must be true"),
        (lambda s: s + "\n[quantize]\nint8_isa = \"avx2\"\n",
         "t.toml: unknown key quantize.int8_isa; allowed: reduce_range"),
        (lambda s: s.replace("align = 16", "align = 16\nquantize = 1"), "t.toml: quantize must be a table, got 1"),
    ],
)
def test_malformed_target_names_file_and_field(tmp_path, edit, message):
    path = write(tmp_path, edit(GOOD.format(name="t")))
    with pytest.raises(TargetError) as err:
        read_target_file(path)
    assert message in str(err.value)


def test_shipped_targets_say_whether_int8_kernels_saturate():
    # x86 reference machines and CI runners: AVX2 without VNNI; arm64 widens every int8 product
    for name in ("x86-ort-1t", "x86-ort-2t", "x86-openvino-cpu", "ci-ort"):
        assert load_target(name).quantize.reduce_range is True, name
    assert load_target("arm64-ort").quantize.reduce_range is False


@pytest.mark.parametrize("value", [True, False, None])
def test_quantize_table_round_trips(tmp_path, value):
    text = GOOD.format(name="q") + ("" if value is None else f"\n[quantize]\nreduce_range = {str(value).lower()}\n")
    target = read_target_file(write(tmp_path, text, "q"))
    assert target.quantize.reduce_range is value
    assert ("[quantize]" in dump_target(target)) is (value is not None)
    (tmp_path / "again").mkdir()
    assert read_target_file(write(tmp_path / "again", dump_target(target), "q")) == target
    assert target_from_dict(target.to_dict()) == target


def test_openvino_settings_validated(tmp_path):
    text = GOOD.format(name="t").replace('name = "ort"\nthreads = 1', 'name = "openvino"\nprecision = "fp8"')
    with pytest.raises(TargetError, match="t.toml: runtime.precision must be one of f32, bf16, f16, auto; got 'fp8'"):
        read_target_file(write(tmp_path, text))


def test_targets_are_frozen():
    target = load_target("ci-ort")
    with pytest.raises(dataclasses.FrozenInstanceError):
        target.align = 8  # type: ignore[misc]
    assert BUILTIN_DIR.name == "targets"
