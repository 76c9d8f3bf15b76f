"""Fixtures for training tests: a Fashion-MNIST root (the real one when Debian's
dataset-fashion-mnist is installed, else a tiny learnable fake with the same file layout)."""

from __future__ import annotations

import pytest
from data_helpers import fake_fashion_mnist

from edgeprune.data.fashion_mnist import DEFAULT_ROOT, FILES


@pytest.fixture(scope="session")
def fmnist_root(tmp_path_factory):
    if all((DEFAULT_ROOT / name).is_file() for pair in FILES.values() for name in pair):
        return DEFAULT_ROOT
    return fake_fashion_mnist(tmp_path_factory.mktemp("fashion-mnist"), n_train=512, n_test=128)


@pytest.fixture(scope="session")
def fake_root(tmp_path_factory):
    return fake_fashion_mnist(tmp_path_factory.mktemp("fake-fmnist"), n_train=256, n_test=128)
