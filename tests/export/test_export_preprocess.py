import json

import pytest

from edgeprune.errors import SpecError
from edgeprune.models.preprocess import (
    CIFAR10,
    FASHION_MNIST,
    IMAGENET,
    Preprocess,
    default_preprocess,
    resolve_preprocess,
)


@pytest.mark.parametrize(
    "spec, channels, expected",
    [
        ("torchvision:resnet18", 3, IMAGENET),
        ("torchvision:resnet18(num_classes=10)", 3, IMAGENET),
        ("edgeprune:resnet20", 1, FASHION_MNIST),
        ("edgeprune:resnet56", 3, CIFAR10),
        ("edgeprune:resnet20", 2, None),
        ("mypkg.models:net", 3, None),
    ],
)
def test_defaults_follow_the_spec(spec, channels, expected):
    assert default_preprocess(spec, channels) == expected


def test_fashion_mnist_values():
    assert FASHION_MNIST.mean == (0.2860,) and FASHION_MNIST.std == (0.3530,)


def test_metadata_json_round_trip():
    record = json.loads(IMAGENET.to_metadata(["batch", 3, 224, 224]))
    assert record == {
        "mean": [0.485, 0.456, 0.406],
        "std": [0.229, 0.224, 0.225],
        "input_shape": ["batch", 3, 224, 224],
        "scale": "pixels in [0,1]",
    }


def test_overrides_are_parsed_and_checked():
    pre = resolve_preprocess("mypkg.models:net", (1, 3, 32, 32), "0.5, 0.5,0.5", "0.25,0.25,0.25")
    assert pre.mean == (0.5, 0.5, 0.5) and pre.std == (0.25, 0.25, 0.25) and pre.name == "custom"
    assert resolve_preprocess("edgeprune:resnet20", (1, 1, 28, 28), [0.1], [0.2]).mean == (0.1,)


@pytest.mark.parametrize(
    "spec, shape, mean, std, message",
    [
        ("torchvision:resnet18", (1, 3, 224, 224), "0.5", "0.5", "mean/std have 1 values, but the input shape [1, 3, 224, 224] has 3 channels"),
        ("torchvision:resnet18", (1, 1, 224, 224), None, None, "has 1 channels"),
        ("mypkg.models:net", (1, 3, 32, 32), None, None, "no default preprocessing for mypkg.models:net"),
        ("edgeprune:resnet20", (1, 1, 28, 28), "0.5", None, "give both --mean and --std"),
        ("edgeprune:resnet20", (1, 1, 28, 28), "a", "0.5", "--mean 'a' must be comma-separated numbers"),
        ("edgeprune:resnet20", (1, 1, 28, 28), "0.5", "0", "every std value must be positive"),
        ("edgeprune:resnet20", (1, 1, 28, 28), "0.5,0.5", "0.5", "mean has 2 values and std has 1"),
    ],
)
def test_bad_preprocessing_is_a_clear_error(spec, shape, mean, std, message):
    with pytest.raises(SpecError, match=None) as info:
        resolve_preprocess(spec, shape, mean, std)
    assert message in str(info.value)


def test_preprocess_is_frozen():
    with pytest.raises(Exception):
        Preprocess((0.5,), (0.5,)).mean = (0.1,)  # type: ignore[misc]
