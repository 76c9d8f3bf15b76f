"""Shared fixtures. Plain helper functions live in torch_helpers.py."""

from __future__ import annotations

import pytest
from torch_helpers import randomize_batchnorm


@pytest.fixture
def resnet20():
    from edgeprune.models import build_model

    model, shape = build_model("edgeprune:resnet20")
    return randomize_batchnorm(model), shape


@pytest.fixture
def tiny_onnx(tmp_path):
    """A tiny Conv->Relu->GlobalAveragePool->Gemm ONNX model built without torch."""
    pytest.importorskip("onnx")
    import onnx_models

    return onnx_models.tiny_cnn(tmp_path / "tiny.onnx")


@pytest.fixture
def tiny_weights(tiny_onnx):
    import onnx_models

    return onnx_models.tiny_cnn.weights


@pytest.fixture(name="onnx_models")
def onnx_models_fixture():
    """The builder module: onnx_models.tiny_cnn(path, batch=..., channels=..., flops=...)."""
    pytest.importorskip("onnx")
    import onnx_models

    return onnx_models
