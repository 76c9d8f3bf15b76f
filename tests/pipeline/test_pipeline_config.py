"""Config validation: every problem named as FILE: section.key before any work."""

from __future__ import annotations

from pathlib import Path

import pytest
from pipeline_helpers import write_tiny

from edgeprune.pipeline import PipelineConfigError, load_config

EXAMPLES = sorted((Path(__file__).resolve().parents[2] / "examples").glob("*.toml"))


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_examples_are_valid(path):
    cfg = load_config(path)
    assert cfg["prune"]["method"] and cfg.resolved["targets"]
    assert cfg.resolved["align"] == 16  # "auto": the first target's alignment


def test_defaults_and_resolution(tmp_path):
    cfg = load_config(write_tiny(tmp_path))
    assert cfg.name == "tiny"
    assert cfg["model"]["name"] == "resnet20"
    assert cfg["export"]["opset"] == 17 and cfg["export"]["fp16"] is False
    assert cfg.resolved["training_time"] is True
    assert Path(cfg.resolved["calib"]) == tmp_path / "calib.toml"  # relative to the config file


def _bad(tmp_path, old: str, new: str) -> str:
    path = write_tiny(tmp_path)
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))
    with pytest.raises(PipelineConfigError) as info:
        load_config(path)
    message = str(info.value)
    assert all(line.startswith(f"{path}: ") for line in message.splitlines())
    return message


@pytest.mark.parametrize(
    "old, new, expected",
    [
        ('[export]', '[exprot]', ["[exprot]: unknown section", "allowed: [model]"]),
        ('seed = 0\n[prune]', 'seed = 0\nsead = 1\n[prune]', ["train.sead: unknown key", "allowed in [train]"]),
        ('test_subset = 64', 'test_subset = "64"', ["data.test_subset: must be an integer, got '64'"]),
        ('method = "dtp"', 'method = "dtpp"', ["prune.method: unknown method 'dtpp'; available:", "crsfp", "l1"]),
        ('budget = "flops=0.5"', 'budget = "flops=2"', ["prune.budget: budget 'flops=2'"]),
        ('budget = "flops=0.5"', 'budget = "half"', ["prune.budget: budget 'half' is not understood"]),
        ('names = ["x86-ort-1t"]', 'names = ["x86-ort-1t", "toaster"]',
         ["targets.names[1]: unknown target 'toaster'; available:", "x86-openvino-cpu"]),
        ('calib = "calib.toml"', 'calib = "missing.toml"', ["quantize.calib: calibration manifest 'missing.toml' not found"]),
        ('calib = "calib.toml"', 'calib = "calib.toml"\nweight_bits = 9',
         ["quantize.weight_bits: weight bits must be an integer from 2 to 8, got 9"]),
        ('calib = "calib.toml"', 'calib = "calib.toml"\nact_bits = 6', ["quantize.act_bits: activation bits must be one of 4, 8"]),
        ('calib = "calib.toml"', 'calib = "calib.toml"\nmethod = "kl"', ["quantize.method: unknown quantization method 'kl'"]),
        ('calib = "calib.toml"', 'calib = "calib.toml"\nreduce_range = "maybe"',
         ["quantize.reduce_range: reduce_range must be auto, on or off (or true/false), got 'maybe'"]),
        ('names = ["x86-ort-1t"]', 'names = ["x86-openvino-cpu"]',
         ['targets.names[0]: target x86-openvino-cpu runs OpenVINO: add "openvino" to export.formats']),
        ('epochs = 2\nbatch_size = 32\nseed = 0\n[prune]', 'epochs = 0\nbatch_size = 32\nseed = 0\n[prune]',
         ["train.epochs: must be positive, got 0"]),
        ('max_ratio = 5.0', 'max_ratio = 5.0\nlatency_ms = { tiny = 1.0 }', ["budgets.latency_ms.tiny: unknown variant"]),
        ('[model]\nspec = "edgeprune:resnet20"', '[model]\nweights = "w.pt"',
         ["model.spec: is required", "model.weights: file"]),
        ('budget = "flops=0.5"', 'budget = "latency=0.5"',
         ["prune.latency_table: prune.budget latency=0.5 is a latency budget: it needs the target's latency table"]),
        ('budget = "flops=0.5"', 'budget = "latency_ms=0"', ["prune.budget: budget 'latency_ms=0': latency_ms must be"]),
        ('budget = "flops=0.5"', 'budget = "latency=0.5"\nlatency_table = "none.json"',
         ["prune.latency_table: no such file: ", "none.json"]),
    ],
)
def test_bad_field_is_named(tmp_path, old, new, expected):
    message = _bad(tmp_path, old, new)
    for text in expected:
        assert text in message


def test_method_options_checked_against_the_method(tmp_path):
    path = write_tiny(tmp_path, method="crsfp", options="options = { consistency_lambda = 0.5 }")
    assert load_config(path)["prune"]["options"] == {"consistency_lambda": 0.5}
    path = write_tiny(tmp_path, method="dtp", options="options = { consistency_lambda = 0.5 }")
    with pytest.raises(PipelineConfigError, match=r"prune.options.consistency_lambda: method 'dtp' has no such option"):
        load_config(path)


def test_every_error_reported_at_once(tmp_path):
    path = write_tiny(tmp_path)
    text = path.read_text().replace('method = "dtp"', 'method = "nope"').replace("runs = 5", "runs = -1")
    path.write_text(text.replace('[budgets]', '[budget]'))
    with pytest.raises(PipelineConfigError) as info:
        load_config(path)
    lines = str(info.value).splitlines()
    assert any("[budget]: unknown section" in line for line in lines)
    assert any("prune.method: unknown method" in line for line in lines)
    assert any("targets.runs: must be at least 1" in line for line in lines)


def test_one_shot_and_training_time_keys(tmp_path):
    message = _bad(tmp_path, 'method = "dtp"', 'method = "l1"')
    assert "prune.epochs: trains a training-time method" in message
    path = write_tiny(tmp_path)
    path.write_text(path.read_text().replace("epochs = 2\nbatch_size = 32\n{", "{"))
    text = path.read_text()
    i = text.index("[prune]")
    path.write_text(text[:i] + text[i:].replace("epochs = 2\n", "", 1))
    with pytest.raises(PipelineConfigError, match=r"prune.epochs: method dtp prunes while training"):
        load_config(path)


def test_not_toml(tmp_path):
    path = tmp_path / "x.toml"
    path.write_text("[model\nspec = 1")
    with pytest.raises(PipelineConfigError, match=r"x.toml: not valid TOML"):
        load_config(path)


def test_own_model_needs_its_preprocessing(tmp_path, monkeypatch):
    package = tmp_path / "mypkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "nets.py").write_text("from torch import nn\n\ndef small_cnn():\n    return nn.Conv2d(1, 4, 3)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    message = _bad(tmp_path, 'spec = "edgeprune:resnet20"', 'spec = "mypkg.nets:small_cnn"')
    assert "model.mean: mypkg.nets:small_cnn is your own model: give model.mean and model.std" in message
    path = write_tiny(tmp_path)
    path.write_text(path.read_text().replace('spec = "edgeprune:resnet20"',
                                             'spec = "mypkg.nets:small_cnn"\nmean = [0.5]\nstd = [0.25]'))
    cfg = load_config(path)
    assert cfg["model"]["name"] == "small_cnn" and cfg["model"]["mean"] == [0.5]
