"""Reduced weight range: when it is chosen, what it does to the weights, and that ONNX Runtime's
int8 kernels then compute what the QDQ file says on this CPU."""

import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from edgeprune.quant.qdq import QuantError
from edgeprune.quant.reduce_range import int8_kernels_saturate, resolve_reduce_range

AVX2 = {"cpu": "AMD EPYC", "arch": "x86_64", "isa": ["avx", "avx2", "fma"]}
VNNI = {"cpu": "Xeon", "arch": "x86_64", "isa": ["avx2", "avx512f", "avx512bw", "avx512_vnni"]}
ALDER = {"cpu": "Core i7-12700", "arch": "x86_64", "isa": ["avx2", "avx_vnni"]}
ARM = {"cpu": "Cortex-A76", "arch": "aarch64", "isa": ["asimd", "asimddp"]}


@pytest.mark.parametrize("machine, saturates", [(AVX2, True), (VNNI, False), (ALDER, False), (ARM, False),
                                                ({"arch": "x86_64", "isa": ["avx512f", "avx512bw"]}, True)])
def test_which_cpus_saturate(machine, saturates):
    assert int8_kernels_saturate(machine) is saturates
    rr = resolve_reduce_range("auto", machine)
    assert rr.enabled is saturates and rr.setting == "auto" and rr.max_weight_bits() == (7 if saturates else 8)
    assert ("no VNNI" in rr.reason) is saturates


@pytest.mark.parametrize("setting, enabled", [("on", True), (True, True), ("off", False), (False, False)])
def test_explicit_settings_ignore_the_cpu(setting, enabled):
    for machine in (AVX2, VNNI):
        assert resolve_reduce_range(setting, machine).enabled is enabled


def test_bad_setting_names_the_choices():
    with pytest.raises(QuantError, match=r"reduce_range must be auto, on or off \(or true/false\), got 'sometimes'"):
        resolve_reduce_range("sometimes", AVX2)


onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
sys.path.insert(0, str(Path(__file__).parent))
import quant_helpers as qh  # noqa: E402

from edgeprune.quant import QuantizeConfig, quantize_onnx  # noqa: E402
from edgeprune.quant.evaluate import kernel_warnings  # noqa: E402


@pytest.fixture
def setup(tmp_path, onnx_models):
    return qh.tiny_model_and_calib(tmp_path, onnx_models)


def _weight_codes(path):
    model = onnx.load(str(path))
    inits = {i.name: onnx.numpy_helper.to_array(i) for i in model.graph.initializer}
    return [inits[n.input[0]] for n in model.graph.node
            if n.op_type == "DequantizeLinear" and n.input[0] in inits and inits[n.input[0]].ndim > 1]


def test_reduce_range_keeps_weight_codes_within_7_bits(tmp_path, setup):
    model, calib = setup
    on = quantize_onnx(model, calib, tmp_path / "on", QuantizeConfig(reduce_range="on", openvino=False), progress=False)
    off = quantize_onnx(model, calib, tmp_path / "off", QuantizeConfig(reduce_range="off", openvino=False),
                        progress=False)
    assert max(int(np.abs(w.astype(int)).max()) for w in _weight_codes(on.files["onnx"])) == 63
    assert max(int(np.abs(w.astype(int)).max()) for w in _weight_codes(off.files["onnx"])) == 127
    r = on.report
    assert r["real_int8"] and r["weight_bits"] == 8 and r["weight_code_bits"] == 7
    assert r["reduce_range"] == {"enabled": True, "setting": "on", "reason": "asked for (on)", "decided_by": "setting",
                                 "target": None}
    assert "7-bit codes (reduce range)" in r["execution"]
    assert '"reduce_range": true' in {p.key: p.value for p in onnx.load(str(on.files["onnx"])).metadata_props}["edgeprune.quant"]
    # 2 x 255 x 63 fits int16: with 7-bit codes the int8 kernels compute the file's arithmetic
    # exactly on any CPU (up to the requantization rounding)
    assert r["sqnr_db"] >= r["evaluation"]["sqnr_db_float_qdq"] - 1.0
    assert r["warnings"] == []


def test_auto_is_decided_on_this_cpu(tmp_path, setup):
    from edgeprune.profile.machine import machine_info

    model, calib = setup
    r = quantize_onnx(model, calib, tmp_path / "auto", QuantizeConfig(openvino=False), progress=False).report
    assert r["reduce_range"]["setting"] == "auto" and r["reduce_range"]["decided_by"] == "cpu"
    assert r["reduce_range"]["enabled"] is int8_kernels_saturate(machine_info())
    assert r["weight_code_bits"] == (7 if r["reduce_range"]["enabled"] else 8)


def test_kernels_far_below_the_file_are_a_warning():
    off, on = resolve_reduce_range("off", AVX2), resolve_reduce_range("on", AVX2)
    ev = {"sqnr_db": 10.4, "sqnr_db_float_qdq": 22.4}
    (w,) = kernel_warnings(ev, off, real_int8=True)
    assert "12.0 dB below" in w and "--reduce-range on" in w
    assert "already use 7-bit codes" in kernel_warnings(ev, on, real_int8=True)[0]
    assert kernel_warnings({"sqnr_db": 21.0, "sqnr_db_float_qdq": 22.4}, off, real_int8=True) == []
    assert kernel_warnings(ev, off, real_int8=False) == []


def test_cli_reduce_range(tmp_path, setup):
    from edgeprune.cli import main

    model, calib = setup
    out = tmp_path / "q"
    result = CliRunner().invoke(main, ["quantize", str(model), "--calib", str(calib), "--reduce-range", "on",
                                       "--no-openvino", "--no-progress", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "7 bits  (reduce range on: on)" in result.output
    assert "SQNR of the QDQ file in float (dB)" in result.output
    bad = CliRunner().invoke(main, ["quantize", str(model), "--calib", str(calib), "--reduce-range", "7",
                                    "--out", str(tmp_path / "never")])
    assert bad.exit_code == 2 and "'7' is not one of 'auto', 'on', 'off'" in bad.output
