"""A tiny RGB image folder of real photos (the 20 foolbox ImageNet samples, two made-up classes)
for structure tests of training-time methods on torchvision models (import as
`from torchvision_helpers import ...`)."""

from __future__ import annotations

from pathlib import Path


def foolbox_folder(root: Path, size: int = 64) -> Path:
    """root/train/{a,b}/*.png and root/test/{a,b}/*.png from the 20 foolbox images (resized)."""
    from PIL import Image

    from edgeprune.quant.calibration import foolbox_data_dir

    files = sorted(foolbox_data_dir().glob("imagenet_*.*"))
    for i, path in enumerate(files):
        for split in ("train", "test") if i < 8 else ("train",):
            folder = root / split / ("a" if i % 2 else "b")
            folder.mkdir(parents=True, exist_ok=True)
            Image.open(path).convert("RGB").resize((size, size)).save(folder / f"{i:02d}.png")
    return root
