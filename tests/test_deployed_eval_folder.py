"""`edgeprune eval model.onnx --data FOLDER` reads the input shape from the file, resizes the
folder's images to it and runs without torch; it agrees with the torch model."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

pytest.importorskip("onnxruntime")


def test_eval_of_an_onnx_file_on_an_image_folder_needs_no_torch(tmp_path):
    import torch

    from edgeprune.data import Normalization, open_data
    from edgeprune.export import ExportOptions, export_model
    from edgeprune.models.preprocess import Preprocess
    from edgeprune.train.trainer import evaluate

    sys.path.insert(0, str(__import__("pathlib").Path(__file__).parent / "pipeline"))
    from pipeline_helpers import image_folders, small_cnn

    torch.manual_seed(0)
    model = small_cnn(num_classes=2).eval()
    folder = image_folders(tmp_path / "images")  # 20x20 images; the model takes 16x16
    export_model(model, (1, 3, 16, 16), tmp_path / "export", preprocess=Preprocess((0.5,) * 3, (0.25,) * 3),
                 options=ExportOptions(formats=("onnx",)))
    code = ("import sys; sys.modules['torch'] = None; from edgeprune.cli import main; "
            f"main(['eval', {str(tmp_path / 'export' / 'model.onnx')!r}, '--data', {str(folder)!r}, "
            f"'--json', {str(tmp_path / 'r.json')!r}])")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    result = json.loads((tmp_path / "r.json").read_text())
    data = open_data(str(folder), input_shape=(1, 3, 16, 16), normalization=Normalization((0.5,) * 3, (0.25,) * 3))
    torch_acc = evaluate(model, data.test, 8)["accuracy"]
    assert result["samples"] == len(data.test) == 8 and abs(result["accuracy"] - torch_acc) <= 1 / 8
