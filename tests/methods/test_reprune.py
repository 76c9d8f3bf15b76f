"""REPrune: Ward clusters of each input channel's kernels, greedy maximum coverage of the
clusters, inside soft-mask training (|gamma| selections, coverage selections at intervals, then
a frozen mask); exact budget, export parity, exact resume, torchvision models."""

import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from ddp_helpers import two_process_run
from torchvision_helpers import foolbox_folder

from edgeprune.cli import main
from edgeprune.data.fashion_mnist import DEFAULT_ROOT, FILES
from edgeprune.errors import MethodError
from edgeprune.methods import get_method
from edgeprune.methods.reprune import REPruneConfig, cluster_labels, max_coverage
from edgeprune.pruning.budget import WINDOW, select_kept

REAL = all((DEFAULT_ROOT / name).is_file() for pair in FILES.values() for name in pair)
TINY = ["--data", "fashion-mnist", "--train-subset", "128", "--test-subset", "64", "--batch-size", "32",
        "--align", "1", "--no-progress"]
needs_data = pytest.mark.skipif(not REAL, reason="needs Debian's dataset-fashion-mnist (real images)")


def _known_clusters():
    """A conv layer of 6 filters x 4 input channels x 3x3 whose kernels form 3 clusters on every
    input channel: filters (0, 3), (1, 4), (2, 5) are near-duplicates; filters 0 and 3 have by
    far the largest weights, so an L1 selection of 3 keeps both and misses a cluster."""
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(3, 4, 9)) * np.array([4.0, 1.0, 1.0])[:, None, None]  # cluster 0: big weights
    kernels = np.stack([centres[f % 3] + 0.01 * rng.normal(size=(4, 9)) for f in range(6)])
    return kernels


def test_config_round_trips_and_bad_options_are_named():
    config = get_method("reprune", interval=3, freeze=0.7, seed=2).config
    assert REPruneConfig(**json.loads(json.dumps(config.to_json()))) == config
    for bad, message in (({"interval": 0}, "interval must be an integer >= 1"), ({"seed": -1}, "seed must be"),
                         ({"freeze": 0}, "freeze must be a fraction"), ({"freeze": 1.5}, "freeze must be")):
        with pytest.raises(MethodError, match=message):
            get_method("reprune", **bad)


def test_selection_covers_every_known_cluster_where_l1_does_not():
    kernels = _known_clusters()
    labels, height = cluster_labels(kernels, 3)
    assert labels.shape == (4, 6) and height > 0
    for i in range(4):  # Ward's cut at the layer's height finds the 3 clusters on every channel
        assert len(set(labels[i])) == 3
        assert all(labels[i, f] == labels[i, f + 3] for f in range(3))
    for seed in range(5):  # whatever the random tie-breaking
        kept, coverage = max_coverage([labels], 3, np.random.default_rng(seed))
        assert coverage == 1.0 and sorted(f % 3 for f in kept) == [0, 1, 2], kept
    l1 = np.abs(kernels).sum(axis=(1, 2))
    by_l1 = select_kept([l1], [3])[0]
    covered = {(i, labels[i, f]) for f in by_l1 for i in range(4)}
    assert len(covered) < 12  # L1 keeps both big duplicates and misses a cluster


def test_cut_height_gives_the_keep_count_on_average():
    rng = np.random.default_rng(1)
    kernels = rng.normal(size=(16, 8, 9))
    for keep in (1, 4, 11, 16):
        labels, _ = cluster_labels(kernels, keep)
        assert np.mean([len(set(labels[i])) for i in range(8)]) == pytest.approx(keep, abs=0.5)


def _prune(out, *extra, model="edgeprune:resnet20", data=TINY):
    return CliRunner().invoke(main, ["prune", model, "--method", "reprune", "--budget", "flops=0.5", *data,
                                     "--out", str(out), *extra])


def _report(out):
    report = json.loads((out / "report.json").read_text())
    report.pop("elapsed_s")
    return report


@needs_data
def test_meets_the_budget_ends_on_a_coverage_selection_exports_and_resumes(tmp_path):
    full = _prune(tmp_path / "full", "--epochs", "3", "--option", "freeze=0.5")
    assert full.exit_code == 0, full.output
    r = _report(tmp_path / "full")
    epochs = json.loads((tmp_path / "full" / "metrics.json").read_text())["epochs"]
    print(f"\nflops {r['flops_ratio']:.4f}, selections {[e['reprune_selection'] for e in epochs]}, "
          f"final coverage {r['reprune']['final_coverage']:.3f}, masked vs slim {r['parity_rel_diff']:.2e}")
    assert WINDOW * 0.5 <= r["flops_ratio"] <= 0.5 and r["warnings"] == [] and r["parity_rel_diff"] <= 1e-4
    assert [e["reprune_selection"] for e in epochs] == [0.0, 1.0, -1.0]  # |gamma|, coverage (freeze), frozen
    assert 0.5 < r["reprune"]["final_coverage"] <= 1.0 and r["reprune"]["freeze_epoch"] == 2
    exported = CliRunner().invoke(main, ["export", str(tmp_path / "full"), "--format", "onnx",
                                         "--out", str(tmp_path / "export")])
    assert exported.exit_code == 0, exported.output
    assert json.loads((tmp_path / "export" / "export.json").read_text())["parity"]["ort"]["rel_diff"] <= 1e-4
    stopped = _prune(tmp_path / "res", "--epochs", "3", "--option", "freeze=0.5", "--stop-after", "2")
    assert stopped.exit_code == 0 and "continue with --resume" in stopped.output
    resumed = _prune(tmp_path / "res", "--epochs", "3", "--option", "freeze=0.5", "--resume")
    assert resumed.exit_code == 0, resumed.output
    a = torch.load(tmp_path / "full" / "model.pt", weights_only=True)
    b = torch.load(tmp_path / "res" / "model.pt", weights_only=True)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert _report(tmp_path / "full") == _report(tmp_path / "res")


@pytest.mark.parametrize("spec", ["torchvision:resnet18(num_classes=2)",
                                  "torchvision:mobilenet_v2(num_classes=2, width_mult=0.5)"])
def test_torchvision_models_prune_to_the_budget_and_export(spec, tmp_path):
    folder = foolbox_folder(tmp_path / "images", size=32)
    data = ["--data", str(folder), "--input-shape", "1x3x32x32", "--batch-size", "10", "--align", "1",
            "--no-progress", "--option", "interval=1"]
    run = _prune(tmp_path / "r", "--epochs", "1", model=spec, data=data)
    assert run.exit_code == 0, run.output
    r = _report(tmp_path / "r")
    print(f"\n{spec}: flops {r['flops_ratio']:.4f}, coverage {r['reprune']['final_coverage']:.3f}")
    assert WINDOW * 0.5 <= r["flops_ratio"] <= 0.5 and r["reprune"]["final_coverage"] is not None
    exported = CliRunner().invoke(main, ["export", str(tmp_path / "r"), "--format", "onnx",
                                         "--out", str(tmp_path / "export")])
    assert exported.exit_code == 0, exported.output
    assert json.loads((tmp_path / "export" / "export.json").read_text())["parity"]["ort"]["rel_diff"] <= 1e-4


@pytest.mark.slow
@needs_data
def test_two_process_gloo_run_ends_with_identical_selections_and_weights(tmp_path):
    r0, r1, report = two_process_run(tmp_path, {"coverage": ("reprune", "final_coverage")}, method="reprune",
                                     train_subset=64, test_subset=32, epochs=1)
    assert r0["kept"] == r1["kept"] and r0["coverage"] == r1["coverage"]
    assert all(torch.equal(r0["weights"][k], r1["weights"][k]) for k in r0["weights"])
    assert 0.99 * 0.5 <= report["flops_ratio"] <= 0.5
