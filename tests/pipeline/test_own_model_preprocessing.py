"""A user's own model on an own image folder with ImageNet mean/std: the pipeline trains, prunes
and fine-tunes it with the same preprocessing the exported files embed, so torch, ONNX Runtime
and OpenVINO give the same top-1 (the reported bug: 47.5% in torch, chance in ORT/OpenVINO)."""

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from edgeprune.cli import main
from edgeprune.data.fashion_mnist import DEFAULT_ROOT, read_arrays

pytest.importorskip("openvino")
pytestmark = pytest.mark.slow

CONFIG = """\
name = "own-imagenet"
[model]
spec = "pipeline_helpers:small_cnn(num_classes=3)"
mean = [0.485, 0.456, 0.406]
std = [0.229, 0.224, 0.225]
[data]
name = "images"
[train]
epochs = 3
batch_size = 16
[prune]
method = "l1"
budget = "flops=0.5"
align = 8
finetune_epochs = 1
batch_size = 16
[export]
formats = ["onnx", "openvino"]
[targets]
names = ["x86-ort-1t"]
runs = 3
warmup = 1
"""

CLASSES = {1: "trouser", 8: "bag", 9: "ankle-boot"}  # real Fashion-MNIST classes, saved as RGB PNGs


def _real_image_folder(root: Path) -> None:
    from PIL import Image

    for split, per_class in (("train", 100), ("test", 40)):
        images, labels = read_arrays(DEFAULT_ROOT, "train" if split == "train" else "test")
        for label, name in CLASSES.items():
            folder = root / split / name
            folder.mkdir(parents=True)
            picked = (labels == label).nonzero()[0][:per_class]
            for i in picked:
                Image.fromarray(images[i].squeeze()).convert("RGB").save(folder / f"{i}.png")


def test_torch_ort_and_openvino_agree_for_an_own_model_with_imagenet_mean_std(tmp_path):
    if not (Path(DEFAULT_ROOT) / "t10k-images-idx3-ubyte.gz").is_file():
        pytest.skip("the real Fashion-MNIST (Debian dataset-fashion-mnist) is not installed")
    _real_image_folder(tmp_path / "images")
    (tmp_path / "own.toml").write_text(CONFIG)
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["pipeline", str(tmp_path / "own.toml"), "--out", str(out), "--no-progress"])
    assert result.exit_code == 0, result.output
    r = json.loads((out / "report.json").read_text())
    assert r["data"]["test_samples"] == 120
    for name in ("dense", "pruned"):
        acc = r["variants"][name]["accuracy"]
        assert set(acc) == {"torch", "ort", "openvino"}, name
        assert acc["torch"] > 0.7, (name, acc)  # well above chance (1/3): agreement is not vacuous
        # same images, same preprocessing: at most one of 120 images may flip on a near-tie
        assert abs(acc["ort"] - acc["torch"]) <= 1 / 120 and abs(acc["openvino"] - acc["torch"]) <= 1 / 120, (name, acc)
    for stage in ("dense", "prune", "export/dense", "export/pruned"):
        pre = json.loads((out / stage / "manifest.json").read_text())["preprocess"]
        assert pre["mean"] == pytest.approx([0.485, 0.456, 0.406]) and pre["std"] == pytest.approx([0.229, 0.224, 0.225]), stage
