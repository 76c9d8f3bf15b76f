"""Training on a user's image folders (--data DIR)."""

import json

import numpy as np
from click.testing import CliRunner
from PIL import Image

from edgeprune.cli import main


def _folders(root):
    rng = np.random.default_rng(0)
    for split, n in (("train", 12), ("test", 4)):
        for c, name in enumerate(("dark", "light")):
            (root / split / name).mkdir(parents=True)
            for i in range(n):
                arr = (rng.integers(0, 40, (20, 20, 3)) + 180 * c).astype(np.uint8)
                Image.fromarray(arr).save(root / split / name / f"{i}.png")
    return root


def test_train_on_image_folders(tmp_path):
    data = _folders(tmp_path / "ds")
    args = ["train", "edgeprune:resnet20(num_classes=2)", "--input-shape", "1x3x16x16", "--data", str(data),
            "--epochs", "1", "--batch-size", "8", "--no-progress", "--out", str(tmp_path / "run")]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["data"]["classes"] == 2 and metrics["data"]["test_samples"] == 8
    assert len(metrics["data"]["normalization"]["mean"]) == 3


def test_class_count_mismatch_is_a_clear_error(tmp_path):
    data = _folders(tmp_path / "ds")
    args = ["train", "edgeprune:resnet20", "--input-shape", "1x3x16x16", "--data", str(data),
            "--epochs", "1", "--no-progress", "--out", str(tmp_path / "run")]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2 and "num_classes=2" in result.output
