"""The one-shot methods (random, ThiNet, He et al. 2017) on torchvision resnet18 at 224x224:
flops=0.5 within the exact-budget window, masked == slim, and the exported ONNX file agrees
with torch. ThiNet and He et al. sample the 20 real ImageNet images of the foolbox package."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from edgeprune.cli import main
from edgeprune.pruning.budget import WINDOW, Budget
from edgeprune.pruning.folder import save_pruned
from edgeprune.pruning.one_shot import prune_one_shot

SPEC, SHAPE = "torchvision:resnet18", (1, 3, 224, 224)
MEAN, STD = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225])


def foolbox_batches():
    """The 20 foolbox ImageNet images, centre-cropped to 224, ImageNet-normalised, 2 batches of 10."""
    from PIL import Image

    from edgeprune.quant.calibration import foolbox_data_dir

    files = sorted(foolbox_data_dir().glob("imagenet_*.*"))
    assert len(files) == 20, files
    images = []
    for path in files:
        im = Image.open(path).convert("RGB")
        w, h = im.size
        side = min(w, h)
        im = im.crop(((w - side) // 2, (h - side) // 2, (w + side) // 2, (h + side) // 2)).resize((224, 224))
        x = (np.asarray(im, dtype=np.float32) / 255.0 - MEAN) / STD
        images.append(torch.from_numpy(x.transpose(2, 0, 1).astype(np.float32)))
    x = torch.stack(images)
    return [x[:10], x[10:]]


@pytest.fixture(scope="module")
def dense():
    from edgeprune.models import build_model

    torch.manual_seed(0)
    model, shape = build_model(SPEC, SHAPE)
    return model.eval()


@pytest.mark.parametrize("method", ["random", "thinet", "he2017"])
def test_resnet18_224_meets_flops_half_and_exports_with_parity(dense, method, tmp_path):
    budget = Budget.parse("flops=0.5")
    result = prune_one_shot(dense, SPEC, SHAPE, method, budget, 1, calibration=foolbox_batches())
    r = result.report
    print(f"\n{method}: flops_ratio {r['flops_ratio']:.4f}, params_ratio {r['params_ratio']:.4f}, "
          f"masked vs slim {r['parity_rel_diff']:.2e}, {r['elapsed_s']:.1f} s")
    assert WINDOW * 0.5 <= r["flops_ratio"] <= 0.5 and r["warnings"] == []
    assert r["parity_rel_diff"] <= 1e-4
    if method != "random":  # the data methods sampled the real images and refit their consumers
        rows = r[method]["sampled_rows"]
        assert rows and all(n == (20 if name == "fc" else 20 * 10) for name, n in rows.items()), rows  # fc: 1 position
        assert r[method]["reconstructed"], r[method]
    save_pruned(tmp_path / "pruned", result.plan, result.model, r)
    exported = CliRunner().invoke(main, ["export", str(tmp_path / "pruned"), "--format", "onnx",
                                         "--out", str(tmp_path / "export")])
    assert exported.exit_code == 0, exported.output
    parity = json.loads((tmp_path / "export" / "export.json").read_text())["parity"]
    print("export parity", {k: p["rel_diff"] for k, p in parity.items()})
    assert parity["ort"]["rel_diff"] <= 1e-4
