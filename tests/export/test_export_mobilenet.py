"""torchvision mobilenet_v2 at 224x224: depthwise convs, ReLU6 (Clip), dynamic batch."""

import pytest

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
pytest.importorskip("openvino")
pytest.importorskip("torchvision")

from torch_helpers import randomize_batchnorm  # noqa: E402

from edgeprune.export import export_model  # noqa: E402
from edgeprune.models import build_model  # noqa: E402
from edgeprune.models.preprocess import resolve_preprocess  # noqa: E402


@pytest.mark.slow
def test_mobilenet_v2_parity(tmp_path):
    model, shape = build_model("torchvision:mobilenet_v2")
    randomize_batchnorm(model)
    preprocess = resolve_preprocess("torchvision:mobilenet_v2", shape)
    assert preprocess.name == "imagenet"
    result = export_model(model, shape, tmp_path / "e", preprocess=preprocess,
                          metadata={"edgeprune.spec": "torchvision:mobilenet_v2"})
    report = result.report
    assert report["simplified"] and report["input_shape"] == ["batch", 3, 224, 224]
    for p in report["parity"].values():
        assert p["passed"] and p["rel_diff"] <= 1e-4, p
        assert p["top1_agreement"] == 1.0
    assert report["flops"] > 250e6  # ~300M MACs for mobilenet_v2 at 224
