"""Shared fixtures. Plain helper functions live in torch_helpers.py."""

from __future__ import annotations

import pytest

from torch_helpers import randomize_batchnorm


@pytest.fixture
def resnet20():
    from edgeprune.models import build_model

    model, shape = build_model("edgeprune:resnet20")
    return randomize_batchnorm(model), shape
