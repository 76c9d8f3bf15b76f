"""Scratch-E / Scratch-B (Liu et al. 2019): a plan's slim architecture trained from random
initialisation, for the dense epochs (E) or the same training FLOPs (B); an ordinary prune
folder that exports with parity and resumes exactly."""

import json

import pytest
import torch
from click.testing import CliRunner

from edgeprune.cli import main
from edgeprune.data.fashion_mnist import DEFAULT_ROOT, FILES
from edgeprune.errors import PlanError
from edgeprune.pruning.request import PruneRequest
from edgeprune.pruning.scratch import scratch_epochs

REAL = all((DEFAULT_ROOT / name).is_file() for pair in FILES.values() for name in pair)
TINY = ["--data", "fashion-mnist", "--train-subset", "96", "--test-subset", "32", "--batch-size", "32",
        "--no-progress"]
needs_data = pytest.mark.skipif(not REAL, reason="needs Debian's dataset-fashion-mnist (real images)")


@pytest.fixture(scope="module")
def l1_folder(tmp_path_factory):
    out = tmp_path_factory.mktemp("l1") / "l1"
    result = CliRunner().invoke(main, ["prune", "edgeprune:resnet20", "--method", "l1", "--budget", "flops=0.5",
                                       "--align", "1", "--out", str(out)])
    assert result.exit_code == 0, result.output
    return out


def _scratch(out, plan, mode, *extra, model=("edgeprune:resnet20",)):
    return CliRunner().invoke(main, ["prune", *model, "--from-plan", str(plan), "--scratch", mode, "--epochs", "1",
                                     *TINY, "--out", str(out), *extra])


def _report(out):
    report = json.loads((out / "report.json").read_text())
    report.pop("elapsed_s")
    return report


def test_epoch_formula_is_pure_numbers():
    assert scratch_epochs("E", 160, 4.0, 1.0) == 160
    assert scratch_epochs("B", 160, 4.0, 2.0) == 320
    assert scratch_epochs("B", 3, 1.0, 0.49) == 6  # round(6.12)
    assert scratch_epochs("B", 1, 1.0, 1.0) == 1
    with pytest.raises(PlanError, match="scratch mode must be one of E, B"):
        scratch_epochs("C", 1, 1.0, 1.0)


def test_bad_settings_are_named(l1_folder, tmp_path):
    def problems(**values):
        values.setdefault("out", str(tmp_path / "o"))
        return dict(PruneRequest.build(**values).problems())

    base = dict(from_plan=str(l1_folder), scratch="E", data="fashion-mnist", epochs=2)
    assert problems(**base) == {}
    request = PruneRequest.build(out=str(tmp_path / "o"), **base)
    assert request.model == "edgeprune:resnet20" and request.input_shape == (1, 1, 28, 28) and request.trains
    assert "model" in problems(model="edgeprune:resnet56", **base)
    assert "input_shape" in problems(input_shape=[1, 1, 32, 32], **base)
    assert "data" in problems(**{**base, "data": None})
    assert "epochs" in problems(**{**base, "epochs": None})
    assert "weights" in problems(weights="w.pt", **base)
    assert "budget" in problems(budget="flops=0.5", **base)
    assert "scratch" in problems(**{**base, "scratch": "C"})
    assert "from_plan" in problems(**{**base, "scratch": None})
    assert "from_plan" in problems(**{**base, "from_plan": str(tmp_path / "nothing.json")})
    assert "from_plan" in problems(**{**base, "out": str(l1_folder)})
    run = CliRunner().invoke(main, ["prune", "--from-plan", str(l1_folder), "--scratch", "B", "--epochs", "1",
                                    "--out", str(tmp_path / "o")])
    assert run.exit_code == 2 and "--data" in run.output and "Traceback" not in run.output
    run = CliRunner().invoke(main, ["prune", "edgeprune:resnet56", "--from-plan", str(l1_folder), "--scratch", "E",
                                    *TINY, "--epochs", "1", "--out", str(tmp_path / "o")])
    assert run.exit_code == 2 and "MODEL: edgeprune:resnet56 is not the model of --from-plan" in run.output
    run = CliRunner().invoke(main, ["prune", "--from-plan", str(l1_folder), "--scratch", "E", "--method", "l2",
                                    *TINY, "--epochs", "1", "--out", str(tmp_path / "o")])
    assert run.exit_code == 2 and "--method" in run.output
    run = CliRunner().invoke(main, ["prune", "edgeprune:resnet20", "--out", str(tmp_path / "o")])
    assert run.exit_code == 2 and "--budget: missing" in run.output


@needs_data
def test_scratch_e_and_b_train_the_plan_and_export_with_parity(l1_folder, tmp_path):
    e = _scratch(tmp_path / "e", l1_folder / "plan.json", "E")
    b = _scratch(tmp_path / "b", l1_folder, "b", model=())  # folder, lower case, MODEL from the plan
    assert e.exit_code == 0 and b.exit_code == 0, e.output + b.output
    source = json.loads((l1_folder / "report.json").read_text())
    re, rb = _report(tmp_path / "e"), _report(tmp_path / "b")
    ratio = source["flops_dense"] / source["flops_pruned"]
    print(f"\nScratch-E {re['scratch']['epochs']} epochs, Scratch-B {rb['scratch']['epochs']} epochs "
          f"(dense/pruned FLOPs {ratio:.3f}); accuracy E {re['accuracy']:.3f} B {rb['accuracy']:.3f}")
    assert re["method"] == "scratch-E" and re["scratch"]["epochs"] == 1 == re["training"]["epochs"]
    assert rb["method"] == "scratch-B" and rb["scratch"]["epochs"] == round(1 * ratio) == rb["training"]["epochs"] == 2
    assert rb["scratch"]["dense_epochs"] == 1 and "round" in rb["scratch"]["formula"]
    assert rb["scratch"]["plan_method"] == "l1" and rb["budget"] == source["budget"]
    for r in (re, rb):
        assert r["flops_pruned"] == source["flops_pruned"] and r["parity_rel_diff"] < 1e-4
    plan = json.loads((l1_folder / "plan.json").read_text())
    assert json.loads((tmp_path / "b" / "plan.json").read_text()) == plan
    assert json.loads((tmp_path / "b" / "manifest.json").read_text())["settings"]["scratch"] == "B"
    dense = torch.load(tmp_path / "e" / "model.pt", weights_only=True)
    inherited = torch.load(l1_folder / "model.pt", weights_only=True)
    assert not torch.equal(dense["conv1.weight"], inherited["conv1.weight"])  # trained, not inherited
    exported = CliRunner().invoke(main, ["export", str(tmp_path / "b"), "--format", "onnx",
                                         "--out", str(tmp_path / "export")])
    assert exported.exit_code == 0, exported.output
    parity = json.loads((tmp_path / "export" / "export.json").read_text())["parity"]
    print("export parity", {k: p["rel_diff"] for k, p in parity.items()})
    assert parity["ort"]["rel_diff"] <= 1e-4


@needs_data
def test_resume_gives_identical_weights(l1_folder, tmp_path):
    full = _scratch(tmp_path / "full", l1_folder, "B")
    assert full.exit_code == 0, full.output
    stopped = _scratch(tmp_path / "res", l1_folder, "B", "--stop-after", "1")
    assert stopped.exit_code == 0 and "continue with --resume" in stopped.output
    resumed = _scratch(tmp_path / "res", l1_folder, "B", "--resume")
    assert resumed.exit_code == 0, resumed.output
    a = torch.load(tmp_path / "full" / "model.pt", weights_only=True)
    b = torch.load(tmp_path / "res" / "model.pt", weights_only=True)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert _report(tmp_path / "full") == _report(tmp_path / "res")
    other = _scratch(tmp_path / "res2", l1_folder, "B", "--stop-after", "1")
    assert other.exit_code == 0
    mismatch = _scratch(tmp_path / "res2", l1_folder, "E", "--resume")  # another run's checkpoint
    assert mismatch.exit_code != 0 and "Traceback" not in mismatch.output


@needs_data
def test_scratch_on_a_plan_with_removed_blocks_trains_the_shallower_model(l1_folder, tmp_path):
    """A depth-pruning plan (sss's removed_blocks): the carved model has those blocks as identities,
    masked == slim holds (their branches silenced), and the FLOPs (hence Scratch-B's epochs) are
    those of the shallower model."""
    plan = json.loads((l1_folder / "plan.json").read_text())
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "plan.json").write_text(json.dumps({**plan, "removed_blocks": ["layer1.1", "layer2.2"]}))
    run = _scratch(tmp_path / "b", tmp_path / "src", "B")
    assert run.exit_code == 0, run.output
    report = _report(tmp_path / "b")
    source = json.loads((l1_folder / "report.json").read_text())
    assert report["removed_blocks"] == ["layer1.1", "layer2.2"] and report["parity_rel_diff"] < 1e-4
    assert report["flops_pruned"] < source["flops_pruned"]
    assert report["scratch"]["dense_over_pruned_flops"] == report["flops_dense"] / report["flops_pruned"] > 2.2
    assert report["scratch"]["epochs"] == round(report["flops_dense"] / report["flops_pruned"])
    state = torch.load(tmp_path / "b" / "model.pt", weights_only=True)
    assert not any(k.startswith(("layer1.1.", "layer2.2.")) for k in state)
    exported = CliRunner().invoke(main, ["export", str(tmp_path / "b"), "--format", "onnx",
                                         "--out", str(tmp_path / "export")])
    assert exported.exit_code == 0, exported.output
    assert json.loads((tmp_path / "export" / "export.json").read_text())["parity"]["ort"]["rel_diff"] <= 1e-4
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "plan.json").write_text(json.dumps({**plan, "removed_blocks": ["layer2.0"]}))
    refused = _scratch(tmp_path / "c", bad, "E")
    assert refused.exit_code == 2 and "removed_blocks[0] 'layer2.0' has a downsampling shortcut" in refused.output
