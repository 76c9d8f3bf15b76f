"""`random`: the "Rethinking the Value of Network Pruning" baseline, added as one file
(edgeprune/methods/random.py) plus its registry line; it works through the CLI and the pipeline
unchanged, meets the exact budget and exports with parity."""

import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from edgeprune.cli import main
from edgeprune.errors import MethodError
from edgeprune.methods import get_method
from edgeprune.pruning.graph import ChannelGraph


def test_scores_are_seeded_uniform_and_ignore_the_weights(resnet20):
    model, shape = resnet20
    graph = ChannelGraph(model, shape)
    a = get_method("random").scores(model, graph)
    assert [len(s) for s in a] == [g.size for g in graph.prunable]
    assert all(np.all((s >= 0) & (s < 1)) for s in a)
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(3.0)
    again = get_method("random").scores(model, graph)
    assert all(np.array_equal(x, y) for x, y in zip(a, again))  # same seed, same draw, whatever the weights
    other = get_method("random", seed=1).scores(model, graph)
    assert not all(np.array_equal(x, y) for x, y in zip(a, other))


def test_bad_seed_is_named():
    with pytest.raises(MethodError, match="random: seed must be a non-negative integer"):
        get_method("random", seed=-1)


def test_cli_prunes_to_the_exact_budget_and_exports_with_parity(tmp_path):
    run = CliRunner()
    out = tmp_path / "random"
    result = run.invoke(main, ["prune", "edgeprune:resnet20", "--method", "random", "--option", "seed=3",
                               "--budget", "flops=0.5", "--align", "1", "--out", str(out)])
    assert result.exit_code == 0, result.output
    report = json.loads((out / "report.json").read_text())
    assert report["method"] == "random" and 0.99 * 0.5 <= report["flops_ratio"] <= 0.5
    assert report["parity_rel_diff"] < 1e-4
    settings = json.loads((out / "manifest.json").read_text())["settings"]
    assert settings["method"] == "random" and settings["options"] == {"seed": 3}
    exported = run.invoke(main, ["export", str(out), "--format", "onnx", "--format", "openvino",
                                 "--out", str(tmp_path / "export")])
    assert exported.exit_code == 0, exported.output
    parity = json.loads((tmp_path / "export" / "export.json").read_text())["parity"]
    assert set(parity) == {"ort", "openvino"} and all(p["rel_diff"] <= 1e-4 for p in parity.values())


RANDOM_PIPELINE = """\
name = "rnd"
[model]
spec = "edgeprune:resnet20"
[prune]
method = "random"
budget = "flops=0.5"
align = 1
options = { seed = 3 }
[export]
formats = ["onnx"]
[targets]
names = ["x86-ort-1t"]
runs = 3
warmup = 1
"""


def test_pipeline_runs_random(tmp_path):
    (tmp_path / "rnd.toml").write_text(RANDOM_PIPELINE)
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["pipeline", str(tmp_path / "rnd.toml"), "--out", str(out), "--no-progress"])
    assert result.exit_code == 0, result.output
    r = json.loads((out / "report.json").read_text())
    assert r["pruning"]["method"] == "random" and 0.99 * 0.5 <= r["pruning"]["flops_ratio"] <= 0.5
    assert r["variants"]["pruned"]["latency"]["x86-ort-1t"]["median_ms"] > 0
    export = json.loads((out / "export" / "pruned" / "export.json").read_text())
    assert export["parity"]["ort"]["rel_diff"] <= 1e-4
