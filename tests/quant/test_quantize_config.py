"""QuantizeConfig: the one place quantize settings are checked, and its JSON round trip."""

import pytest

from edgeprune.quant import QuantError, QuantizeConfig


def test_defaults_are_valid_and_resolved():
    config = QuantizeConfig()
    assert config.errors() == {}
    assert (config.method, config.weight_bits, config.act_bits, config.bias_correction) == ("aciq", 8, 8, None)
    assert config.reduce_range == "auto" and config.real_int8 and not config.bit_allocation_enabled
    assert QuantizeConfig(weight_bits=4).bit_allocation_enabled  # aciq below 8 bits
    assert not QuantizeConfig(method="minmax", weight_bits=4).bit_allocation_enabled
    assert not QuantizeConfig(weight_bits=4, bit_allocation=False).bit_allocation_enabled


@pytest.mark.parametrize("given, stored", [(True, "data"), (False, None), (None, None), ("both", "both")])
def test_bias_correction_booleans(given, stored):
    assert QuantizeConfig(bias_correction=given).bias_correction == stored


@pytest.mark.parametrize("given, stored", [(True, "on"), (False, "off"), (None, "auto"), ("off", "off")])
def test_reduce_range_booleans(given, stored):
    assert QuantizeConfig(reduce_range=given).reduce_range == stored


@pytest.mark.parametrize("kwargs, field, text", [
    (dict(method="kl"), "method", "unknown quantization method 'kl'"),
    (dict(weight_bits=16), "weight_bits", "weight bits must be an integer from 2 to 8, got 16"),
    (dict(weight_bits=True), "weight_bits", "weight bits must be an integer from 2 to 8"),
    (dict(act_bits=6), "act_bits", "activation bits must be one of 4, 8, got 6"),
    (dict(bias_correction="sometimes"), "bias_correction", "bias_correction must be"),
    (dict(reduce_range="maybe"), "reduce_range", "reduce_range must be auto, on or off (or true/false), got 'maybe'"),
    (dict(act_bits=4, openvino=True), "openvino", "8-bit activations only"),
    (dict(bit_allocation="yes"), "bit_allocation", "bit_allocation must be"),
    (dict(seed=-1), "seed", "seed must be a non-negative integer"),
])
def test_each_bad_setting_is_named(kwargs, field, text):
    errors = QuantizeConfig(**kwargs).errors()
    assert list(errors) == [field] and text in errors[field]


def test_json_round_trip():
    config = QuantizeConfig(method="percentile", weight_bits=4, act_bits=4, bias_correction="mean-var",
                            bit_allocation=True, openvino=False, reduce_range="on", seed=3)
    data = config.to_json()
    assert data["bias_correction"] == "mean-var" and data["reduce_range"] == "on"
    assert QuantizeConfig.from_json(data) == config
    assert QuantizeConfig.from_json(QuantizeConfig().to_json()) == QuantizeConfig()
    with pytest.raises(QuantError, match="unknown quantize settings bits"):
        QuantizeConfig.from_json({**data, "bits": 8})
