"""Helpers for the quantization tests: a tiny CNN with edgeprune.preprocess metadata, an
image folder of smooth synthetic pictures, and manifests written into tmp_path.

Imported as `quant_helpers` (tests/quant is put on sys.path by the test modules)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np


def with_preprocess(path: Path, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25), size: int = 16) -> Path:
    import onnx

    model = onnx.load(str(path))
    prop = model.metadata_props.add()
    prop.key = "edgeprune.preprocess"
    prop.value = json.dumps({"mean": list(mean), "std": list(std), "input_shape": ["batch", len(mean), size, size],
                             "scale": "pixels in [0,1]"})
    onnx.save(model, str(path))
    return path


def image_folder(root: Path, count: int = 24, size: int = 20, seed: int = 0) -> Path:
    """``count`` RGB PNGs: smooth gradients plus noise, so activations look like real ones."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    yy, xx = np.mgrid[0:size, 0:size] / size
    for i in range(count):
        channels = []
        for _ in range(3):
            a, b, c = rng.uniform(-1, 1, 3)
            channels.append(0.5 + 0.3 * np.sin(3 * a * xx + 3 * b * yy + c) + 0.1 * rng.standard_normal((size, size)))
        img = (np.clip(np.stack(channels, -1), 0, 1) * 255).astype(np.uint8)
        Image.fromarray(img).save(root / f"img_{i:03d}.png")
    return root


def manifest(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def folder_manifest(tmp_path: Path, folder: Path, count: int = 16, holdout: int = 8, extra: str = "") -> Path:
    return manifest(tmp_path / "calib.toml", f"""
[source]
kind = "folder"
path = "{folder}"

[samples]
count = {count}
holdout = {holdout}
batch_size = 8
{extra}
""")


def tiny_model_and_calib(tmp_path: Path, onnx_models, images: int = 24, count: int = 16, holdout: int = 8):
    """(the tiny 3x16x16 CNN with preprocess metadata, a manifest over a folder of ``images``)."""
    model = with_preprocess(onnx_models.tiny_cnn(tmp_path / "tiny.onnx", channels=16))
    return model, folder_manifest(tmp_path, image_folder(tmp_path / "images", count=images), count=count, holdout=holdout)
