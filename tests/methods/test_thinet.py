"""ThiNet: greedy selection on consumers' sampled outputs, least-squares refit; through the CLI
(with fine-tuning) to the exact budget, with masked == slim and export parity."""

import json

import numpy as np
import pytest
from click.testing import CliRunner
from consumer_helpers import REAL, compare

from edgeprune.cli import main
from edgeprune.errors import MethodError
from edgeprune.methods import get_method, method_options
from edgeprune.methods.consumers import SampleConfig, order_scores
from edgeprune.methods.thinet import greedy_removal
from edgeprune.pruning.budget import select_kept


def test_greedy_removes_the_channel_that_adds_least_error_each_step():
    rng = np.random.default_rng(0)
    z = rng.normal(size=(200, 7)) * np.array([1.0, 0.1, 2.0, 0.5, 0.05, 1.5, 0.3])
    gram = z.T @ z
    order, errors = greedy_removal(gram)
    removed = []
    for c, err in zip(order, errors):
        left = [j for j in range(7) if j not in removed]
        best = min(left, key=lambda j: (np.sum(z[:, removed + [j]].sum(1) ** 2), j))
        assert c == best and np.isclose(err, np.sum(z[:, removed + [c]].sum(1) ** 2))
        removed.append(c)
    scores = order_scores(order, errors)
    for k in range(1, 8):  # the allocator's widths keep exactly the channels removed last
        assert select_kept([scores], [k])[0] == sorted(order[7 - k:])
    assert np.all(scores >= 0)


def test_config_round_trips_and_bad_options_are_named():
    config = get_method("thinet", images=64, positions=4).config
    assert SampleConfig(**json.loads(json.dumps(config.to_json()))) == config
    assert method_options("thinet") == ["images", "positions", "ridge", "seed"]
    with pytest.raises(MethodError, match="images must be a positive integer"):
        get_method("thinet", images=0)
    with pytest.raises(MethodError, match="calibrate"):
        get_method("thinet").scores(None, None)


@pytest.mark.skipif(not REAL, reason="needs Debian's dataset-fashion-mnist (real images)")
def test_refit_lowers_the_consumers_output_error_below_l1_at_the_same_widths():
    graph, widths, errors, (report,) = compare(["thinet"])
    print(f"\nwidths {widths}\nheld-out relative consumer output error: " +
          ", ".join(f"{k} {v:.5f}" for k, v in errors.items()))
    assert errors["thinet"] < errors["thinet (selection only)"] < errors["l1"]
    assert report["reconstructed"] and not report["skipped"]
    assert all(r["error_after"] <= r["error_before"] for r in report["reconstructed"])
    assert sum(r["refit"] for r in report["reconstructed"]) >= len(report["reconstructed"]) - 2


def test_cli_without_data_is_refused(tmp_path):
    result = CliRunner().invoke(main, ["prune", "edgeprune:resnet20", "--method", "thinet", "--budget", "flops=0.5",
                                       "--out", str(tmp_path / "x")])
    assert result.exit_code == 2 and "samples the training data" in result.output


@pytest.mark.skipif(not REAL, reason="needs Debian's dataset-fashion-mnist (real images)")
def test_cli_prunes_fine_tunes_to_the_exact_budget_and_exports_with_parity(tmp_path):
    run = CliRunner()
    out = tmp_path / "thinet"
    result = run.invoke(main, ["prune", "edgeprune:resnet20", "--method", "thinet", "--option", "images=64",
                               "--data", "fashion-mnist", "--train-subset", "128", "--test-subset", "64",
                               "--batch-size", "32", "--finetune-epochs", "1", "--budget", "flops=0.5",
                               "--align", "1", "--no-progress", "--out", str(out)])
    assert result.exit_code == 0, result.output
    report = json.loads((out / "report.json").read_text())
    print(f"\nthinet: flops_ratio {report['flops_ratio']:.4f}, parity {report['parity_rel_diff']:.2e}")
    assert report["method"] == "thinet" and 0.99 * 0.5 <= report["flops_ratio"] <= 0.5
    assert report["parity_rel_diff"] < 1e-4 and report["training"]["epochs"] == 1
    assert report["thinet"]["config"]["images"] == 64 and report["thinet"]["reconstructed"]
    assert sum(report["thinet"]["sampled_rows"].values()) > 0
    exported = run.invoke(main, ["export", str(out), "--format", "onnx", "--format", "openvino",
                                 "--out", str(tmp_path / "export")])
    assert exported.exit_code == 0, exported.output
    parity = json.loads((tmp_path / "export" / "export.json").read_text())["parity"]
    print("export parity", {k: p["rel_diff"] for k, p in parity.items()})
    assert set(parity) == {"ort", "openvino"} and all(p["rel_diff"] <= 1e-4 for p in parity.values())


def test_a_consumer_that_cannot_be_sampled_falls_back_to_selection_and_is_reported():
    import torch
    from torch import nn

    from edgeprune.pruning.budget import Budget
    from edgeprune.pruning.one_shot import prune_one_shot

    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                          nn.Conv2d(8, 8, 3, padding=1, padding_mode="reflect"), nn.BatchNorm2d(8), nn.ReLU(),
                          nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 4))
    batches = [torch.randn(16, 1, 12, 12) for _ in range(4)]
    for name in ("thinet", "he2017"):
        result = prune_one_shot(model, "tests:tiny", (1, 1, 12, 12), name, Budget.parse("ratio=0.5"), 1,
                                calibration=iter(batches))
        report = result.report[name]
        assert result.report["parity_rel_diff"] < 1e-4 and [g["kept"] for g in result.report["groups"]] == [4, 4]
        assert [r["layer"] for r in report["reconstructed"]] == ["8"]  # the Linear
        assert {"layer": "3", "reason": "Conv2d with padding_mode='reflect' (only zero padding is unfolded)"} \
            in report["skipped"]
        assert any(s.get("group") == "0" and "scored by L1" in s["reason"] for s in report["skipped"])
