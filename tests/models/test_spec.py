import pytest
import torch

from edgeprune.errors import SpecError
from edgeprune.models import build_model, parse_input_shape, parse_spec


def test_parse_spec_with_kwargs():
    spec = parse_spec("torchvision:resnet18(num_classes=10)")
    assert (spec.source, spec.name, spec.kwargs) == ("torchvision", "resnet18", {"num_classes": 10})
    assert parse_spec(spec.text) == spec


@pytest.mark.parametrize("text", ["resnet18", "torchvision:", "torchvision:resnet18(10)", "a:b(c=d)"])
def test_bad_spec_says_what_is_allowed(text):
    with pytest.raises(SpecError):
        parse_spec(text)


def test_unknown_names():
    with pytest.raises(SpecError, match="unknown torchvision model 'resnet19'.*resnet18"):
        build_model("torchvision:resnet19")
    with pytest.raises(SpecError, match=r"unknown edgeprune model 'resnet21'; available: \['resnet20', 'resnet56'\]"):
        build_model("edgeprune:resnet21")
    with pytest.raises(SpecError, match="cannot import module 'no_such_pkg.models'"):
        build_model("no_such_pkg.models:make")


def test_zoo_takes_channels_from_input_shape():
    model, shape = build_model("edgeprune:resnet20", input_shape=(1, 3, 32, 32))
    assert shape == (1, 3, 32, 32) and model.conv1.in_channels == 3
    assert model(torch.randn(shape)).shape == (1, 10)
    model, shape = build_model("edgeprune:resnet56")
    assert shape == (1, 1, 28, 28) and model.conv1.in_channels == 1


def test_user_factory_needs_a_shape():
    with pytest.raises(SpecError, match="--input-shape"):
        build_model("factories:tiny_factory")
    _, shape = build_model("factories:tiny_factory", input_shape=(1, 3, 8, 8))
    assert shape == (1, 3, 8, 8)


def test_input_shape_parsing():
    assert parse_input_shape("1x3x224x224") == (1, 3, 224, 224)
    for bad in ("1x3x0x4", "abc", "3"):
        with pytest.raises(SpecError, match="--input-shape"):
            parse_input_shape(bad)


def test_weights_from_another_model_are_rejected(tmp_path):
    other, _ = build_model("edgeprune:resnet56")
    torch.save(other.state_dict(), tmp_path / "w.pt")
    with pytest.raises(SpecError, match="do not fit edgeprune:resnet20: unexpected"):
        build_model("edgeprune:resnet20", weights=tmp_path / "w.pt")
    model, _ = build_model("edgeprune:resnet20")
    torch.save({"model": model.state_dict(), "epoch": 3}, tmp_path / "ckpt.pt")
    loaded, _ = build_model("edgeprune:resnet20", weights=tmp_path / "ckpt.pt")
    assert torch.equal(loaded.conv1.weight, model.conv1.weight)
    with pytest.raises(SpecError, match="does not exist"):
        build_model("edgeprune:resnet20", weights=tmp_path / "missing.pt")
