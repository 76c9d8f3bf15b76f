"""`edgeprune.files.weights`: torch weight files are checked before and after torch.load
(weights_only=True): a damaged zip record or a NaN/inf tensor is refused, naming the file and
the record or tensor; the checkpoint and saved-model readers go through it."""

from __future__ import annotations

import io
import zipfile

import pytest
import torch

from edgeprune.errors import SpecError
from edgeprune.files.weights import check_finite, check_zip, load_torch_file, non_finite


def _save(path, obj):
    with open(path, "wb") as f:  # as edgeprune's save_torch does
        torch.save(obj, f)
    return path


def _flip_data_byte(path):
    """Flip one byte inside the largest record's data (not a header): only its CRC notices."""
    with zipfile.ZipFile(path) as archive:
        info = max(archive.infolist(), key=lambda i: i.compress_size)
    raw = bytearray(path.read_bytes())
    name_len = int.from_bytes(raw[info.header_offset + 26:info.header_offset + 28], "little")
    extra_len = int.from_bytes(raw[info.header_offset + 28:info.header_offset + 30], "little")
    start = info.header_offset + 30 + name_len + extra_len
    raw[start + info.compress_size // 2] ^= 0xFF
    path.write_bytes(bytes(raw))
    return info.filename


@pytest.fixture
def state():
    torch.manual_seed(0)
    return {"layer1.0.conv1.weight": torch.randn(4, 3, 3, 3), "fc.bias": torch.zeros(2),
            "bn.num_batches_tracked": torch.tensor(3)}


def test_a_good_file_loads(tmp_path, state):
    loaded = load_torch_file(_save(tmp_path / "model.pt", state))
    assert torch.equal(loaded["layer1.0.conv1.weight"], state["layer1.0.conv1.weight"])


def test_a_bad_crc_is_refused_naming_the_record(tmp_path, state):
    path = _save(tmp_path / "model.pt", state)
    record = _flip_data_byte(path)
    with pytest.raises(SpecError, match="fails its CRC check") as err:
        load_torch_file(path)
    assert str(path) in str(err.value) and record in str(err.value)


def test_a_truncated_file_is_refused(tmp_path, state):
    path = _save(tmp_path / "model.pt", state)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(SpecError, match="damaged file") as err:
        load_torch_file(path)
    assert str(path) in str(err.value)


def test_nan_values_are_refused_naming_the_tensor(tmp_path, state):
    state["layer1.0.conv1.weight"].view(-1)[:12] = float("nan")
    path = _save(tmp_path / "model.pt", state)
    with pytest.raises(SpecError, match=r"model\.pt: tensor 'layer1\.0\.conv1\.weight' has 12 NaN values"):
        load_torch_file(path)


def test_infinite_values_and_more_tensors_are_counted(tmp_path, state):
    state["layer1.0.conv1.weight"][0, 0, 0, 0] = float("inf")
    state["fc.bias"][1] = float("nan")
    with pytest.raises(SpecError, match=r"'layer1\.0\.conv1\.weight' has 1 infinite values \(and 1 more tensors\)"):
        load_torch_file(_save(tmp_path / "model.pt", state))


def test_nested_names_and_integer_tensors():
    nested = {"model": {"w": torch.tensor([1.0, float("nan")])}, "optimizer": {"state": {0: {"m": torch.ones(2)}}},
              "rng": torch.tensor([1, 2], dtype=torch.uint8), "list": [torch.tensor([float("-inf")])]}
    assert non_finite(nested) == [("model.w", 1, 0), ("list[0]", 0, 1)]
    check_finite({"rng": torch.tensor([255], dtype=torch.uint8)}, "x.pt")  # integers are never non-finite


def test_weights_only_still_refuses_pickled_objects(tmp_path):
    path = _save(tmp_path / "model.pt", {"obj": io.BytesIO})  # a class: weights_only refuses it
    with pytest.raises(SpecError, match="cannot be read"):
        load_torch_file(path)


def test_a_legacy_file_passes_the_zip_check(tmp_path, state):
    path = tmp_path / "old.pt"
    torch.save(state, path, _use_new_zipfile_serialization=False)
    check_zip(path)
    assert set(load_torch_file(path)) == set(state)


def test_missing_and_garbage_files(tmp_path):
    with pytest.raises(SpecError, match="does not exist"):
        load_torch_file(tmp_path / "nope.pt")
    (tmp_path / "junk.pt").write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(SpecError, match="junk.pt: damaged file"):
        load_torch_file(tmp_path / "junk.pt")


def test_load_checkpoint_refuses_a_damaged_or_non_finite_checkpoint(tmp_path, state):
    from edgeprune.train.base import TrainError
    from edgeprune.train.checkpoint import load_checkpoint, save_checkpoint

    good = save_checkpoint(tmp_path / "checkpoint.pt", {"epoch": 1, "model": state})
    assert load_checkpoint(good)["epoch"] == 1
    _flip_data_byte(good)
    with pytest.raises(TrainError, match="CRC"):
        load_checkpoint(good)
    state["fc.bias"][0] = float("nan")
    bad = save_checkpoint(tmp_path / "nan" / "checkpoint.pt", {"epoch": 1, "model": state})
    with pytest.raises(TrainError, match=r"checkpoint\.pt: tensor 'model\.fc\.bias' has 1 NaN values"):
        load_checkpoint(bad)


def test_load_saved_refuses_non_finite_weights_even_when_the_manifest_matches(tmp_path):
    from edgeprune.files.manifest import write_manifest
    from edgeprune.models import build_model
    from edgeprune.models.saved import load_saved

    model, shape = build_model("edgeprune:resnet20")
    sd = model.state_dict()
    sd["conv1.weight"].view(-1)[:3] = float("nan")
    _save(tmp_path / "model.pt", sd)
    write_manifest(tmp_path, "train", ["model.pt"], spec="edgeprune:resnet20", input_shape=list(shape),
                   preprocess=None, classes=None, settings={})
    with pytest.raises(SpecError, match=r"model\.pt: tensor 'conv1\.weight' has 3 NaN values"):
        load_saved(tmp_path)
