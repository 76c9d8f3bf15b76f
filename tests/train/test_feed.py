"""What a model is fed is decided once and travels with it: a model trained on an image folder
with its own preprocessing is fine-tuned with that preprocessing (not the folder's statistics,
not flips), the fine-tuning helps, and the exported file embeds the same values."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from edgeprune.cli import main
from edgeprune.data.fashion_mnist import DEFAULT_ROOT, FILES
from edgeprune.models.preprocess import FASHION_MNIST, IMAGENET, decide_feed

REAL = all((DEFAULT_ROOT / name).is_file() for pair in FILES.values() for name in pair)


def test_decide_feed_order():
    shape = (1, 3, 32, 32)
    record = {"mean": [0.1, 0.2, 0.3], "std": [0.5, 0.5, 0.5], "source": "runs/dense"}
    given = decide_feed("torchvision:resnet18", shape, mean=[0.0] * 3, std=[1.0] * 3, weights_record=record, from_weights=True)
    assert given.mean == (0.0,) * 3  # 1. --mean/--std
    assert decide_feed("torchvision:resnet18", shape, weights_record=record, from_weights=True).mean == (0.1, 0.2, 0.3)
    assert decide_feed("torchvision:resnet18", shape, from_weights=True) == IMAGENET  # 3. trained weights: the spec's
    assert decide_feed("edgeprune:resnet20", (1, 1, 28, 28), from_weights=True) == FASHION_MNIST
    assert decide_feed("torchvision:resnet18", shape) is None  # 4. from scratch: the data's statistics
    assert decide_feed("mypkg.nets:net", shape, from_weights=True) is None


def _real_folder(root, n_train=3000, n_test=1000):
    """Real Fashion-MNIST images written as an image folder (PNG), classes by name."""
    from PIL import Image

    from edgeprune.data.fashion_mnist import CLASSES, load_split

    for split, n in (("train", n_train), ("test", n_test)):
        s = load_split(DEFAULT_ROOT, split)
        for i in range(n):
            d = root / split / CLASSES[int(s.labels[i])].replace("/", "-")
            d.mkdir(parents=True, exist_ok=True)
            Image.fromarray(s.images[i, 0].numpy()).save(d / f"{i}.png")
    return root


@pytest.mark.slow
@pytest.mark.skipif(not REAL, reason="needs Debian's dataset-fashion-mnist (real images)")
def test_finetuning_an_own_folder_model_helps_and_keeps_its_preprocessing(tmp_path):
    folder = _real_folder(tmp_path / "images")
    run = CliRunner()
    common = ["--data", str(folder), "--batch-size", "64", "--no-progress", "--threads", "1"]
    # "pretrained": a model fed raw [0, 1] pixels (mean 0, std 1), as a third-party classifier may be
    trained = run.invoke(main, ["train", "edgeprune:resnet20", *common, "--epochs", "2", "--mean", "0", "--std", "1",
                                "--out", str(tmp_path / "dense")])
    assert trained.exit_code == 0, trained.output
    dense = json.loads((tmp_path / "dense" / "manifest.json").read_text())
    assert dense["preprocess"]["mean"] == [0.0] and dense["preprocess"]["std"] == [1.0]
    assert len(dense["classes"]) == 10 and "Ankle boot" in dense["classes"]
    prune = ["prune", "edgeprune:resnet20", "--weights", str(tmp_path / "dense" / "model.pt"), "--method", "l1",
             "--budget", "flops=0.3", "--align", "1", *common]
    one_shot = run.invoke(main, [*prune, "--out", str(tmp_path / "oneshot")])
    tuned = run.invoke(main, [*prune, "--finetune-epochs", "2", "--out", str(tmp_path / "tuned")])
    assert one_shot.exit_code == 0 and tuned.exit_code == 0, one_shot.output + tuned.output
    acc_one_shot = json.loads((tmp_path / "oneshot" / "report.json").read_text())["accuracy"]
    report = json.loads((tmp_path / "tuned" / "report.json").read_text())
    assert report["preprocess"]["mean"] == [0.0] and report["preprocess"]["std"] == [1.0]  # from the weights' folder
    assert report["augment"] == {"pad": 3, "flip": False}  # an image folder is not flipped by default
    print(f"own folder, flops=0.3: one-shot top-1 {acc_one_shot:.4f} -> fine-tuned {report['accuracy']:.4f}")
    assert report["accuracy"] > acc_one_shot + 0.05, (acc_one_shot, report["accuracy"])
    exported = run.invoke(main, ["export", str(tmp_path / "tuned"), "--format", "onnx", "--out", str(tmp_path / "onnx")])
    assert exported.exit_code == 0, exported.output
    embedded = json.loads((tmp_path / "onnx" / "export.json").read_text())["preprocess"]
    assert embedded["mean"] == [0.0] and embedded["std"] == [1.0]
