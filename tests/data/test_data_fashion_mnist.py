import numpy as np
import pytest
import torch
from data_helpers import fake_fashion_mnist, write_idx

from edgeprune.data import (
    FASHION_MNIST_MEAN,
    FASHION_MNIST_NORMALIZATION,
    FASHION_MNIST_STD,
    DataError,
    open_data,
)
from edgeprune.data.fashion_mnist import DEFAULT_ROOT, load_split, read_idx


def test_idx_round_trip(tmp_path):
    a = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    assert np.array_equal(read_idx(write_idx(tmp_path / "a.gz", a)), a)


def test_truncated_idx_is_a_clear_error(tmp_path):
    path = write_idx(tmp_path / "a.gz", np.zeros((4, 2, 2), dtype=np.uint8))
    import gzip

    data = gzip.open(path).read()[:-3]
    with gzip.open(path, "wb") as f:
        f.write(data)
    with pytest.raises(DataError, match="declares shape"):
        read_idx(path)


def test_loads_splits_with_subsets(tmp_path):
    root = fake_fashion_mnist(tmp_path / "fm", n_train=40, n_test=12)
    data = open_data("fashion-mnist", root=root, input_shape=(1, 1, 28, 28), train_subset=32, test_subset=10)
    assert data.train.images.shape == (32, 1, 28, 28) and data.train.images.dtype == torch.uint8
    assert data.test.labels.shape == (10,) and data.num_classes == 10
    full = load_split(root, "train")
    assert torch.equal(data.train.images, full.images[:32])  # the FIRST N images


def test_missing_dataset_names_the_debian_package_and_path(tmp_path):
    with pytest.raises(DataError) as err:
        open_data("fashion-mnist", root=tmp_path / "nowhere")
    message = str(err.value)
    assert "dataset-fashion-mnist" in message and str(tmp_path / "nowhere") in message
    assert "train-images-idx3-ubyte.gz" in message and str(DEFAULT_ROOT) in message


def test_unknown_data_name_is_a_clear_error():
    with pytest.raises(DataError, match="neither a built-in dataset"):
        open_data("cifar-1000")


def test_wrong_input_shape_is_a_clear_error(tmp_path):
    root = fake_fashion_mnist(tmp_path / "fm", n_train=8, n_test=4)
    with pytest.raises(DataError, match="pass --input-shape 1x1x28x28"):
        open_data("fashion-mnist", root=root, input_shape=(1, 3, 224, 224))


def test_too_large_subset_is_a_clear_error(tmp_path):
    root = fake_fashion_mnist(tmp_path / "fm", n_train=8, n_test=4)
    with pytest.raises(DataError, match="cannot take the first 9"):
        open_data("fashion-mnist", root=root, train_subset=9)


def test_normalisation_constants_in_one_place():
    assert FASHION_MNIST_NORMALIZATION.mean == (FASHION_MNIST_MEAN,) == (0.2860,)
    assert FASHION_MNIST_NORMALIZATION.std == (FASHION_MNIST_STD,) == (0.3530,)
    assert FASHION_MNIST_NORMALIZATION.to_json() == {"scale": 1 / 255, "mean": [0.286], "std": [0.353]}


@pytest.mark.skipif(not DEFAULT_ROOT.is_dir(), reason="Debian package dataset-fashion-mnist not installed")
def test_real_fashion_mnist_matches_its_constants():
    train = load_split(DEFAULT_ROOT, "train")
    assert len(train) == 60000 and len(load_split(DEFAULT_ROOT, "test")) == 10000
    x = train.images.double() / 255
    assert abs(x.mean().item() - FASHION_MNIST_MEAN) < 5e-4 and abs(x.std().item() - FASHION_MNIST_STD) < 5e-4
    assert torch.bincount(train.labels).tolist() == [6000] * 10
