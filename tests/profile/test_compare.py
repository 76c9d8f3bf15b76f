"""Interleaved A/B comparison and FLOPs metadata."""

from __future__ import annotations

import pytest

from edgeprune.files.onnx_metadata import read_metadata

from edgeprune.errors import SpecError
from edgeprune.profile import ProfileConfig
from edgeprune.profile.compare import (
    compare_models,
    format_comparison,
    parse_flops,
)
from edgeprune.runtime import make_settings


def test_parse_flops():
    assert parse_flops({"edgeprune.flops": "1.5e9"}) == 1.5e9
    assert parse_flops({}) is None
    assert parse_flops({"edgeprune.flops": "lots"}) is None
    assert parse_flops({"edgeprune.flops": "-1"}) is None


def test_compare_with_and_without_flops(tmp_path, onnx_models):
    pytest.importorskip("onnxruntime")
    a = onnx_models.tiny_cnn(tmp_path / "dense.onnx", channels=16, flops=4e6)
    b = onnx_models.tiny_cnn(tmp_path / "slim.onnx", channels=8, flops=2e6)
    assert read_metadata(a) == {"edgeprune.flops": "4000000.0"}
    settings = make_settings("ort", {"threads": 1})
    result = compare_models(a, b, "ort", settings, ProfileConfig(runs=5, warmup=1), target="t")
    assert result["a"]["model"]["name"] == "dense" and result["b"]["model"]["name"] == "slim"
    assert result["rounds"] == 5 and len(result["paired_speedup"]["ci95"]) == 2
    assert result["speedup"] == pytest.approx(result["a"]["latency_ms"]["median"] / result["b"]["latency_ms"]["median"])
    assert result["flops_ratio"] == 2.0
    assert result["speedup_per_flops_ratio"] == pytest.approx(result["speedup"] / 2.0)
    assert "FLOPs A / B" in format_comparison(result)

    plain = onnx_models.tiny_cnn(tmp_path / "plain.onnx")
    result = compare_models(a, plain, "ort", settings, ProfileConfig(runs=3, warmup=0))
    assert result["flops_ratio"] is None and result["speedup_per_flops_ratio"] is None
    assert "plain carry no edgeprune.flops" in format_comparison(result)


def test_compare_rejects_models_with_different_inputs(tmp_path, onnx_models):
    pytest.importorskip("onnxruntime")
    a = onnx_models.tiny_cnn(tmp_path / "a.onnx", size=16)
    b = onnx_models.tiny_cnn(tmp_path / "b.onnx", size=32)
    with pytest.raises(SpecError, match="take different inputs"):
        compare_models(a, b, "ort", make_settings("ort", {"threads": 1}), ProfileConfig(runs=2, warmup=0))


def test_interleaved_ort_sessions_do_not_spin():
    """Timed interleaved, an idle ORT session's spinning pool would steal the cores of the one
    being timed (2 threads on 2 vCPUs: ~2x slower); compare turns spinning off for every session."""
    from edgeprune.profile.compare import _not_spinning
    from edgeprune.runtime.onnxruntime import OrtSettings

    assert OrtSettings().allow_spinning is True
    assert _not_spinning("ort", OrtSettings(threads=2)) == OrtSettings(threads=2, allow_spinning=False)
    assert _not_spinning("ort", None).allow_spinning is False
    assert _not_spinning("openvino", "kept") == "kept"
