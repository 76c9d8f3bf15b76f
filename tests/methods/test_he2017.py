"""He et al. 2017: LASSO channel selection on consumers' sampled outputs, least-squares refit;
exactly k channels at the allocator's widths; through the pipeline with export parity."""

import json

import numpy as np
import pytest
from click.testing import CliRunner
from consumer_helpers import REAL, compare

from edgeprune.cli import main
from edgeprune.methods import get_method
from edgeprune.methods.he2017 import lasso, lasso_select, refit_errors, removal_order


def _gram(seed=0, n=8):
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(300, n)) * np.geomspace(2.0, 0.02, n)
    return z.T @ z


def test_lasso_selects_exactly_k_and_prefers_the_channels_that_carry_the_output():
    gram = _gram()
    for k in range(1, 9):
        assert len(lasso_select(gram, k)) == k
    assert lasso_select(gram, 3) == [0, 1, 2]  # contributions scaled 2.0 ... 0.02: the first carry the output
    assert np.allclose(lasso(gram, 0.0), 1.0, atol=1e-3)  # no penalty: beta = 1 reproduces y
    assert np.all(lasso(gram, 1e9) == 0.0)
    duplicate = np.ones((4, 4)) + np.diag([0.0, 0.0, 0.0, 1e-3])  # three identical channels, one distinct
    assert 3 in lasso_select(duplicate, 2)


def test_scores_follow_the_lasso_path():
    gram = _gram(1)
    order = removal_order(gram)
    assert sorted(order) == list(range(8)) and order[-1] == 0  # the strongest leaves last
    errors = refit_errors(gram, order)
    assert errors[-1] == pytest.approx(float(gram.sum()))  # nothing left: the whole output is lost
    assert all(a <= b + 1e-9 for a, b in zip(errors, errors[1:]))


@pytest.mark.skipif(not REAL, reason="needs Debian's dataset-fashion-mnist (real images)")
def test_refit_lowers_the_consumers_output_error_below_l1_at_the_same_widths():
    graph, widths, errors, reports = compare(["thinet", "he2017"])
    print(f"\nwidths {widths}\nheld-out relative consumer output error: " +
          ", ".join(f"{k} {v:.5f}" for k, v in errors.items()))
    assert errors["he2017"] < errors["he2017 (selection only)"] < errors["l1"]
    assert errors["thinet"] < errors["l1"]
    he = reports[1]
    assert he["reconstructed"] and not he["skipped"]
    assert all(r["error_after"] <= r["error_before"] for r in he["reconstructed"])


PIPELINE = """\
name = "he"
[model]
spec = "edgeprune:resnet20"
[data]
name = "fashion-mnist"
train_subset = 128
test_subset = 64
[prune]
method = "he2017"
budget = "flops=0.5"
align = 1
options = { images = 64, positions = 8 }
[export]
formats = ["onnx"]
[targets]
names = ["x86-ort-1t"]
runs = 3
warmup = 1
"""


@pytest.mark.skipif(not REAL, reason="needs Debian's dataset-fashion-mnist (real images)")
def test_pipeline_runs_he2017_to_the_exact_budget_with_parity(tmp_path):
    (tmp_path / "he.toml").write_text(PIPELINE)
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["pipeline", str(tmp_path / "he.toml"), "--out", str(out), "--no-progress"])
    assert result.exit_code == 0, result.output
    r = json.loads((out / "report.json").read_text())
    assert r["pruning"]["method"] == "he2017" and 0.99 * 0.5 <= r["pruning"]["flops_ratio"] <= 0.5
    export = json.loads((out / "export" / "pruned" / "export.json").read_text())
    print(f"\nhe2017 pipeline: flops_ratio {r['pruning']['flops_ratio']:.4f}, ort parity "
          f"{export['parity']['ort']['rel_diff']:.2e}")
    assert export["parity"]["ort"]["rel_diff"] <= 1e-4


def test_pipeline_without_data_names_the_problem(tmp_path):
    (tmp_path / "he.toml").write_text(PIPELINE.replace('[data]\nname = "fashion-mnist"\ntrain_subset = 128\n'
                                                       'test_subset = 64\n', ""))
    result = CliRunner().invoke(main, ["pipeline", str(tmp_path / "he.toml"), "--out", str(tmp_path / "o")])
    assert result.exit_code != 0 and "samples the training data" in result.output, result.output


def test_registered_with_its_options():
    m = get_method("he2017", ridge=0.0)
    assert m.name == "he2017" and m.needs_data and m.config.ridge == 0.0
