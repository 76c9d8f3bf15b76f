import numpy as np
import pytest
import torch
from PIL import Image

from edgeprune.data import DataError, open_data


def _folder(root, classes=("cat", "dog"), per_class=3, size=(20, 16), splits=("train", "test")):
    for split in splits:
        for c, name in enumerate(classes):
            (root / split / name).mkdir(parents=True)
            for i in range(per_class):
                arr = np.full((size[1], size[0], 3), 40 * c + i, dtype=np.uint8)
                Image.fromarray(arr).save(root / split / name / f"{i}.png")
    return root


def test_image_folder_is_resized_to_the_model_input(tmp_path):
    root = _folder(tmp_path / "ds")
    data = open_data(str(root), input_shape=(1, 3, 8, 8))
    assert data.train.images.shape == (6, 3, 8, 8) and data.test.images.shape == (6, 3, 8, 8)
    assert data.train.classes == ("cat", "dog") and data.train.labels.tolist() == [0, 0, 0, 1, 1, 1]
    assert data.augment.pad == 1 and not data.augment.flip  # folders: crop only (digits, text are not mirror-symmetric)
    assert len(data.train.norm.mean) == 3 and all(s > 0 for s in data.train.norm.std)
    gray = open_data(str(root), input_shape=(1, 1, 8, 8))
    assert gray.train.images.shape == (6, 1, 8, 8) and gray.train.images.dtype == torch.uint8


def test_val_folder_is_accepted_as_the_test_split(tmp_path):
    root = _folder(tmp_path / "ds", splits=("train", "val"))
    assert len(open_data(str(root), input_shape=(1, 3, 8, 8)).test) == 6


def test_folder_without_splits_is_a_clear_error(tmp_path):
    root = _folder(tmp_path / "ds", splits=("train",))
    with pytest.raises(DataError, match="expected an image-folder dataset"):
        open_data(str(root), input_shape=(1, 3, 8, 8))


def test_mismatched_class_folders_are_a_clear_error(tmp_path):
    root = _folder(tmp_path / "ds")
    (root / "test" / "bird").mkdir()
    with pytest.raises(DataError, match="class folders"):
        open_data(str(root), input_shape=(1, 3, 8, 8))
