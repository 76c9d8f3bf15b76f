import json

import pytest

from edgeprune.export import ExportError, ExportOptions, parse_batch
from edgeprune.export.parity import compare_logits


def test_options_round_trip_through_json():
    for options in (ExportOptions(), ExportOptions(formats=("openvino",), batch=4, fp16=True, opset=18, seeds=(3,))):
        data = json.loads(json.dumps(options.to_json()))
        assert ExportOptions.from_json(data) == options


def test_parity_batches():
    assert ExportOptions().parity_batches == (1, 2)
    assert ExportOptions(batch=3).parity_batches == (3,)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"formats": ("onnx", "tflite")}, "unknown export format 'tflite'"),
        ({"formats": ()}, "no export format"),
        ({"formats": ("onnx", "onnx")}, "listed twice"),
        ({"opset": 13}, "opset must be an integer >= 17"),
        ({"batch": 0}, "batch must be a positive integer"),
        ({"exporter": "magic"}, "unknown ONNX exporter"),
        ({"formats": ("onnx",), "fp16": True}, "fp16 compresses OpenVINO IR weights"),
    ],
)
def test_bad_options(kwargs, message):
    with pytest.raises(ExportError) as info:
        ExportOptions(**kwargs).validate()
    assert message in str(info.value)


def test_parse_batch():
    assert parse_batch("dynamic") is None and parse_batch("Dynamic") is None
    assert parse_batch("4") == 4
    for bad in ("0", "-1", "x"):
        with pytest.raises(ExportError, match="--batch must be 'dynamic' or a positive integer"):
            parse_batch(bad)


def test_compare_logits():
    import numpy as np

    ref = np.array([[1.0, 2.0, 4.0], [3.0, 0.0, 1.0]], dtype=np.float32)
    out = ref.copy()
    out[0, 2] = 3.9  # still the argmax
    out[1, 1] = 3.5  # argmax moves
    diff, rel, agree = compare_logits(ref, out)
    assert diff == pytest.approx(3.5) and rel == pytest.approx(3.5 / 4.0) and agree == 1
    assert compare_logits(ref, ref[:1]) == (float("inf"), float("inf"), 0)
