import json
import math

import pytest

from edgeprune.train import TrainConfig, TrainError, lr_at


def test_config_round_trips_through_json():
    config = TrainConfig(epochs=3, lr=0.05, batch_size=64, seed=7, schedule="constant")
    assert TrainConfig.from_json(json.loads(json.dumps(config.to_json()))) == config


@pytest.mark.parametrize(
    "kwargs, message",
    [({"epochs": 0}, "epochs"), ({"epochs": 1, "lr": 0}, "learning rate"), ({"epochs": 1, "batch_size": 1}, "batch size"),
     ({"epochs": 1, "schedule": "step"}, "schedule")],
)
def test_bad_config_is_a_clear_error(kwargs, message):
    with pytest.raises(TrainError, match=message):
        TrainConfig(**kwargs)


def test_unknown_config_key_is_a_clear_error():
    with pytest.raises(TrainError, match="unknown training config keys"):
        TrainConfig.from_json({"epochs": 1, "nesterov": True})


def test_cosine_schedule_is_a_pure_function_of_the_step():
    config = TrainConfig(epochs=1, lr=0.1)
    assert lr_at(config, 0, 100) == pytest.approx(0.1)
    assert lr_at(config, 50, 100) == pytest.approx(0.05)
    assert lr_at(config, 99, 100) == pytest.approx(0.05 * (1 + math.cos(math.pi * 0.99)))
    assert lr_at(TrainConfig(epochs=1, lr=0.1, schedule="constant"), 99, 100) == 0.1
