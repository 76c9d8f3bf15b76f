"""Stage skipping, re-running what changed (and everything downstream), and --resume."""

from __future__ import annotations

import json
import shutil

import pytest
from pipeline_helpers import statuses, write_tiny

from edgeprune.pipeline import PipelineError, load_config, run_pipeline

STAGE_NAMES = ["dense", "prune", "export", "quantize", "evaluate", "profile", "check"]


def _run(config, out, **kw):
    return run_pipeline(load_config(config), out, progress=False, echo=lambda line: None, **kw)


def _copy(tiny_run, tmp_path):
    config, out, _ = tiny_run
    folder = tmp_path / "copy"
    shutil.copytree(config.parent, folder, ignore=shutil.ignore_patterns("out"))
    shutil.copytree(out, folder / "out")
    return folder / config.name, folder / "out"


def _mtimes(out):
    return {name: (out / name / "stage.json").stat().st_mtime_ns for name in STAGE_NAMES}


def test_first_run_writes_every_stage(tiny_run):
    _, out, outcome = tiny_run
    assert statuses(outcome) == {**{n: "ran" for n in STAGE_NAMES}, "report": "ran"}
    for name in STAGE_NAMES:
        record = json.loads((out / name / "stage.json").read_text())
        assert record["stage"] == name and len(record["key"]) == 64
        assert not (out / name / "pending.json").exists()
    assert json.loads((out / "export" / "stage.json").read_text())["inputs"].keys() == {"dense", "prune"}
    log = [json.loads(line) for line in (out / "pipeline.log.jsonl").read_text().splitlines()]
    assert [e["stage"] for e in log] == STAGE_NAMES + ["report"]


def test_unchanged_rerun_redoes_nothing(tiny_run, tmp_path):
    config, out = _copy(tiny_run, tmp_path)
    before = _mtimes(out)
    outcome = _run(config, out)
    assert statuses(outcome) == {**{n: "skipped" for n in STAGE_NAMES}, "report": "ran"}
    assert _mtimes(out) == before
    assert outcome.report["variants"]["pruned"]["flops"] == tiny_run[2].report["variants"]["pruned"]["flops"]


def test_changed_profile_setting_reruns_profile_and_downstream_only(tiny_run, tmp_path):
    config, out = _copy(tiny_run, tmp_path)
    config.write_text(config.read_text().replace("runs = 5", "runs = 3"))
    outcome = _run(config, out)
    got = statuses(outcome)
    assert [got[n] for n in STAGE_NAMES] == ["skipped"] * 5 + ["ran", "ran"]
    report = json.loads((out / "profile" / "pruned.x86-ort-1t.json").read_text())
    assert report["runs"] == 3


def test_changed_budget_reruns_prune_and_everything_after(tiny_run, tmp_path):
    config, out = _copy(tiny_run, tmp_path)
    config.write_text(config.read_text().replace('budget = "flops=0.5"', 'budget = "flops=0.7"'))
    outcome = _run(config, out)
    got = statuses(outcome)
    assert got["dense"] == "skipped"
    assert all(got[n] == "ran" for n in STAGE_NAMES[1:])
    assert outcome.report["pruning"]["flops_ratio"] > tiny_run[2].report["pruning"]["flops_ratio"]


def test_tampered_artifact_is_rebuilt(tiny_run, tmp_path):
    config, out = _copy(tiny_run, tmp_path)
    (out / "export" / "pruned" / "model.onnx").write_bytes(b"not a model")
    got = statuses(_run(config, out))
    assert got["dense"] == got["prune"] == "skipped"
    assert got["export"] == "ran"


def _state(path):
    import torch

    return torch.load(path, weights_only=True)


@pytest.mark.parametrize("stage", ["dense", "prune"])
def test_interrupted_training_resumes_to_the_same_result(tiny_run, tmp_path, stage):
    import torch

    ref_config, ref_out, ref = tiny_run
    config = write_tiny(tmp_path)
    out = tmp_path / "out"
    stopped = _run(config, out, stop_after={stage: 1})
    assert not stopped.complete and statuses(stopped)[stage] == "stopped"
    assert (out / f".{stage}.partial" / "checkpoint.pt").is_file() and not (out / stage).exists()

    with pytest.raises(PipelineError, match="pass --resume"):
        _run(config, out)  # never silently thrown away

    resumed = _run(config, out, resume=True)
    assert resumed.complete
    got = statuses(resumed)
    assert got[stage] == "resumed"
    if stage == "prune":
        assert got["dense"] == "skipped"  # finished stages are not redone
    metrics = json.loads((out / stage / "metrics.json").read_text())
    assert len(metrics["epochs"]) == 2 and metrics["complete"]
    for name in ("dense", "prune"):
        a, b = _state(out / name / "model.pt"), _state(ref_out / name / "model.pt")
        assert a.keys() == b.keys()
        assert all(torch.equal(a[k], b[k]) for k in a), f"{name} weights differ after resume"
    for variant, v in ref.report["variants"].items():
        r = resumed.report["variants"][variant]
        for key in ("accuracy", "flops", "params", "size_bytes"):
            assert r[key] == v[key], (variant, key)


def test_crsfp_with_options_reuses_the_dense_stage(tiny_run, tmp_path):
    config, out = _copy(tiny_run, tmp_path)
    text = config.read_text().replace('method = "dtp"', 'method = "crsfp"')
    config.write_text(text.replace("batch_size = 32\n\n[export]", "batch_size = 32\noptions = { consistency_lambda = 0.5 }\n[export]"))
    assert load_config(config)["prune"]["options"] == {"consistency_lambda": 0.5}
    outcome = _run(config, out)
    got = statuses(outcome)
    assert got["dense"] == "skipped" and got["prune"] == "ran"
    assert outcome.report["pruning"]["method"] == "crsfp"
    assert outcome.report["pruning"]["options"] == {"consistency_lambda": 0.5}
    plan_run = json.loads((out / "prune" / "metrics.json").read_text())
    assert plan_run["method"] == "crsfp" and plan_run["method_options"] == {"consistency_lambda": 0.5}


def test_scratch_b_retrains_the_methods_plan_from_random_init(tiny_run, tmp_path):
    """prune.scratch = "B": [prune]'s method makes the plan (prune/plan_source/), then its
    architecture trains from random init for [train]'s epochs x dense/pruned FLOPs; the stage
    exports and checks as any other (the scratch job's resume is tested in
    tests/pruning/test_scratch.py, the pipeline's resume of a training stage here above)."""
    config, out = _copy(tiny_run, tmp_path)
    text = config.read_text().replace('method = "dtp"', 'method = "l1"').replace("epochs = 2\nbatch_size = 32\n\n[export]",
                                                                                 'batch_size = 32\nscratch = "B"\n[export]')
    config.write_text(text.replace('budget = "flops=0.5"\nepochs = 2', 'budget = "flops=0.5"'))
    cfg = load_config(config)
    assert cfg["prune"]["scratch"] == "B"
    outcome = _run(config, out)
    assert outcome.complete and statuses(outcome)["dense"] == "skipped" and statuses(outcome)["prune"] == "ran"
    report = json.loads((out / "prune" / "report.json").read_text())
    source = json.loads((out / "prune" / "plan_source" / "report.json").read_text())
    assert report["method"] == "scratch-B" and report["scratch"]["plan_method"] == "l1"
    assert report["scratch"]["dense_epochs"] == 2 and report["scratch"]["epochs"] == 4  # 2 x ~2.0
    assert (out / "prune" / "plan.json").read_text() == (out / "prune" / "plan_source" / "plan.json").read_text()
    assert report["flops_pruned"] == source["flops_pruned"]
    stage = json.loads((out / "prune" / "stage.json").read_text())["result"]
    assert stage["scratch"]["mode"] == "B" and stage["scratch"]["epochs"] == 4
    assert json.loads((out / "export" / "stage.json").read_text())["result"]  # exported the scratch model


def test_bad_scratch_settings_are_named(tiny_run, tmp_path):
    config, _ = _copy(tiny_run, tmp_path)
    from edgeprune.pipeline import PipelineConfigError

    text = config.read_text().replace('method = "dtp"', 'method = "l1"\nscratch = "C"').replace(
        'budget = "flops=0.5"\nepochs = 2', 'budget = "flops=0.5"')
    config.write_text(text)
    with pytest.raises(PipelineConfigError, match=r'prune.scratch: must be "E" .* or "B"'):
        load_config(config)
    config.write_text(text.replace('scratch = "C"', 'scratch = "E"').replace("[train]\nepochs = 2\nbatch_size = 32\nseed = 0\n", ""))
    with pytest.raises(PipelineConfigError, match=r"prune.scratch: needs a \[train\] section"):
        load_config(config)
