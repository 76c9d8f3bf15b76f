"""Exporting a pruned resnet20 from its `edgeprune prune` folder."""

import json

import pytest

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
pytest.importorskip("openvino")

from torch_helpers import randomize_batchnorm  # noqa: E402

from edgeprune.errors import SpecError  # noqa: E402
from edgeprune.export import export_model, load_source  # noqa: E402
from edgeprune.files.manifest import ArtifactError  # noqa: E402
from edgeprune.files.onnx_metadata import read_metadata  # noqa: E402
from edgeprune.export.source import plan_fingerprint  # noqa: E402
from edgeprune.models import build_model  # noqa: E402
from edgeprune.models.preprocess import resolve_preprocess  # noqa: E402
from edgeprune.pruning.budget import Budget  # noqa: E402
from edgeprune.pruning.folder import save_pruned  # noqa: E402
from edgeprune.pruning.one_shot import prune_one_shot  # noqa: E402


@pytest.fixture(scope="module")
def pruned_folder(tmp_path_factory):
    model, shape = build_model("edgeprune:resnet20")
    randomize_batchnorm(model)
    result = prune_one_shot(model, "edgeprune:resnet20", shape, "l1", Budget.parse("flops=0.5"), 8)
    folder = tmp_path_factory.mktemp("pruned") / "run"
    save_pruned(folder, result.plan, result.model, result.report)
    return folder, result


def test_pruned_export_parity_and_metadata(pruned_folder, tmp_path):
    folder, pruned = pruned_folder
    source = load_source(str(folder))
    assert source.kind == "pruned" and source.spec == "edgeprune:resnet20" and source.input_shape == (1, 1, 28, 28)
    preprocess = resolve_preprocess(source.spec, source.input_shape)
    result = export_model(source.model, source.input_shape, tmp_path / "e", preprocess=preprocess, metadata=source.metadata)
    for p in result.report["parity"].values():
        assert p["passed"] and p["rel_diff"] <= 1e-4 and p["top1_agreement"] == 1.0
    meta = read_metadata(tmp_path / "e" / "model.onnx")
    assert meta["edgeprune.plan_fingerprint"] == plan_fingerprint(pruned.plan)
    assert meta["edgeprune.budget"] == "flops=0.5" and meta["edgeprune.method"] == "l1"
    assert meta["edgeprune.model_fingerprint"] == pruned.plan.fingerprint
    # the measured FLOPs of the slim model match the cost model's figure in report.json
    assert int(meta["edgeprune.flops"]) == pruned.report["flops_pruned"]
    assert int(meta["edgeprune.params"]) == pruned.report["params_pruned"]
    assert json.loads(meta["edgeprune.preprocess"])["mean"] == [0.286]


def test_plan_fingerprint_is_stable_and_content_based(pruned_folder):
    from edgeprune.pruning.plan import PruningPlan

    folder, pruned = pruned_folder
    assert plan_fingerprint(PruningPlan.load(folder / "plan.json")) == plan_fingerprint(pruned.plan)
    full, shape = build_model("edgeprune:resnet20")
    other = prune_one_shot(full, "edgeprune:resnet20", shape, "l1", Budget.parse("flops=0.7"), 8)
    assert plan_fingerprint(other.plan) != plan_fingerprint(pruned.plan)


def test_incomplete_prune_folder(pruned_folder, tmp_path):
    folder, _ = pruned_folder
    partial = tmp_path / "partial"
    partial.mkdir()
    for name in ("plan.json", "manifest.json"):  # a crash before model.pt was written
        (partial / name).write_bytes((folder / name).read_bytes())
    with pytest.raises(ArtifactError, match="missing model.pt, which its manifest.json lists"):
        load_source(str(partial))


def test_weights_with_a_prune_folder_is_an_error(pruned_folder):
    folder, _ = pruned_folder
    with pytest.raises(SpecError, match="carries its own weights"):
        load_source(str(folder), weights=folder / "model.pt")


@pytest.mark.parametrize(
    "src, message",
    [
        ("runs/nothing-here", "does not exist and is not a model spec"),
        ("edgeprune:nope", "unknown edgeprune model 'nope'"),
    ],
)
def test_bad_sources(src, message):
    with pytest.raises(SpecError, match=message):
        load_source(src)


def test_a_file_is_not_a_source(tmp_path):
    (tmp_path / "model.pt").write_bytes(b"x")
    with pytest.raises(SpecError, match="is a file"):
        load_source(str(tmp_path / "model.pt"))
