from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

_spec = importlib.util.spec_from_file_location(
    "edgeprune_test_onnx_models", Path(__file__).parents[1] / "runtime" / "onnx_models.py"
)
onnx_models = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(onnx_models)


@pytest.fixture
def tiny_onnx(tmp_path):
    pytest.importorskip("onnx")
    return onnx_models.tiny_cnn(tmp_path / "tiny.onnx")


@pytest.fixture(name="onnx_models")
def onnx_models_fixture():
    pytest.importorskip("onnx")
    return onnx_models
