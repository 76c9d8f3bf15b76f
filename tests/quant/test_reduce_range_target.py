"""Reduce range for the device quantized for: explicit on/off > the target's [quantize]
reduce_range > auto from this CPU; quantize.json records which one decided."""

import json
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from edgeprune.quant import QuantError, QuantizeConfig
from edgeprune.quant.reduce_range import resolve_reduce_range
from edgeprune.targets import load_target

AVX2 = {"cpu": "AMD EPYC", "arch": "x86_64", "isa": ["avx", "avx2", "fma"]}
VNNI = {"cpu": "Xeon", "arch": "x86_64", "isa": ["avx2", "avx512f", "avx512bw", "avx512_vnni"]}

NO_HINT = """\
name = "plain"
description = "a target that does not say"
align = 16

[runtime]
name = "ort"
threads = 1
"""


@pytest.fixture
def plain(tmp_path):
    path = tmp_path / "plain.toml"
    path.write_text(NO_HINT)
    return path


@pytest.mark.parametrize("target, machine, enabled", [
    ("x86-ort-1t", VNNI, True),   # the target says true: this CPU's VNNI does not matter
    ("ci-ort", VNNI, True),
    ("arm64-ort", AVX2, False),   # the target says false: this AVX2 CPU does not matter
])
def test_target_decides_auto(target, machine, enabled):
    rr = resolve_reduce_range("auto", machine, target=target)
    assert (rr.enabled, rr.setting, rr.decided_by, rr.target) == (enabled, "auto", "target", target)
    assert rr.reason.startswith(f"target {target}: [quantize] reduce_range = {str(enabled).lower()}")
    assert rr.max_weight_bits() == (7 if enabled else 8)


@pytest.mark.parametrize("setting, enabled", [("on", True), (True, True), ("off", False), (False, False)])
def test_explicit_setting_beats_the_target(setting, enabled):
    for target in ("x86-ort-1t", "arm64-ort"):
        rr = resolve_reduce_range(setting, AVX2, target=target)
        assert (rr.enabled, rr.decided_by, rr.target) == (enabled, "setting", target)
        assert rr.reason.startswith(f"asked for ({'on' if enabled else 'off'})")
        overrides = load_target(target).quantize.reduce_range != enabled
        assert ("overrides target" in rr.reason) is overrides


def test_target_without_a_hint_leaves_it_to_this_cpu(plain):
    for machine, enabled in ((AVX2, True), (VNNI, False)):
        rr = resolve_reduce_range("auto", machine, target=str(plain))
        assert (rr.enabled, rr.decided_by, rr.target) == (enabled, "cpu", "plain")
        assert "target plain gives no [quantize] reduce_range, so this CPU decides" in rr.reason
    assert resolve_reduce_range("auto", AVX2).to_json() == {
        "enabled": True, "setting": "auto", "decided_by": "cpu", "target": None,
        "reason": resolve_reduce_range("auto", AVX2).reason,
    }


def test_config_target_and_loaded_target_are_accepted(plain):
    rr = resolve_reduce_range(QuantizeConfig(target="arm64-ort"), AVX2)
    assert (rr.enabled, rr.decided_by) == (False, "target")
    rr = resolve_reduce_range(QuantizeConfig(reduce_range="on", target="arm64-ort"), AVX2)
    assert (rr.enabled, rr.decided_by) == (True, "setting")
    assert resolve_reduce_range("auto", VNNI, target=load_target("x86-ort-2t")).enabled is True
    assert QuantizeConfig(target=plain).target == str(plain)  # a Path is kept as its text


def test_bad_target_is_a_config_error(tmp_path):
    errors = QuantizeConfig(target="x86-ort-9t").errors()
    assert list(errors) == ["target"] and errors["target"].startswith("unknown target 'x86-ort-9t'; available:")
    assert "searched" in errors["target"]
    assert "must be a target name or a path" in QuantizeConfig(target="").errors()["target"]
    assert "must be a target name or a path" in QuantizeConfig(target=3).errors()["target"]  # type: ignore[arg-type]
    bad = tmp_path / "bad.toml"
    bad.write_text(NO_HINT.replace('name = "plain"', 'name = "bad"') + "\n[quantize]\nreduce_range = \"yes\"\n")
    assert "bad.toml: quantize.reduce_range must be true" in QuantizeConfig(target=str(bad)).errors()["target"]
    with pytest.raises(QuantError, match=r"^target: unknown target 'x86-ort-9t'"):
        resolve_reduce_range("auto", AVX2, target="x86-ort-9t")
    assert QuantizeConfig(target="x86-ort-1t").errors() == {}


def test_target_round_trips_through_json():
    config = QuantizeConfig(reduce_range="off", target="arm64-ort")
    assert config.to_json()["target"] == "arm64-ort"
    assert QuantizeConfig.from_json(config.to_json()) == config
    assert "target" in QuantizeConfig().to_json() and QuantizeConfig().target is None


# ---- end to end: quantize_onnx and `edgeprune quantize --target` ----------------------------

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
sys.path.insert(0, str(Path(__file__).parent))
import quant_helpers as qh  # noqa: E402

from edgeprune.quant import quantize_onnx  # noqa: E402

@pytest.fixture
def setup(tmp_path, onnx_models):
    return qh.tiny_model_and_calib(tmp_path, onnx_models, images=16, count=8, holdout=8)



def test_quantize_for_a_target_records_who_decided(tmp_path, setup):
    model, calib = setup
    arm = quantize_onnx(model, calib, tmp_path / "arm", QuantizeConfig(openvino=False, target="arm64-ort"),
                        progress=False).report
    assert arm["reduce_range"]["decided_by"] == "target" and arm["reduce_range"]["target"] == "arm64-ort"
    assert arm["reduce_range"]["enabled"] is False and arm["weight_code_bits"] == 8
    x86 = quantize_onnx(model, calib, tmp_path / "x86", QuantizeConfig(openvino=False, target="x86-ort-1t"),
                        progress=False).report
    assert x86["reduce_range"]["enabled"] is True and x86["weight_code_bits"] == 7
    forced = quantize_onnx(model, calib, tmp_path / "off",
                           QuantizeConfig(openvino=False, reduce_range="off", target="x86-ort-1t"), progress=False)
    assert forced.report["reduce_range"]["decided_by"] == "setting" and forced.report["weight_code_bits"] == 8
    manifest = json.loads((tmp_path / "off" / "manifest.json").read_text())
    assert "x86-ort-1t" in json.dumps(manifest)  # the settings recorded include the target



def test_cli_target(tmp_path, setup):
    from edgeprune.cli import main

    model, calib = setup
    out = tmp_path / "q"
    result = CliRunner().invoke(main, ["quantize", str(model), "--calib", str(calib), "--target", "arm64-ort",
                                       "--no-openvino", "--no-progress", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "8 bits  (reduce range auto: off, decided by target arm64-ort)" in result.output
    rr = json.loads((out / "quantize.json").read_text())["reduce_range"]
    assert (rr["decided_by"], rr["target"], rr["enabled"]) == ("target", "arm64-ort", False)


def test_cli_unknown_target_is_a_usage_error(tmp_path, setup):
    from edgeprune.cli import main

    model, calib = setup
    result = CliRunner().invoke(main, ["quantize", str(model), "--calib", str(calib), "--target", "x86-ort-9t",
                                       "--no-progress", "--out", str(tmp_path / "never")])
    assert result.exit_code == 2, result.output
    assert "target: unknown target 'x86-ort-9t'" in result.output and not (tmp_path / "never").exists()
