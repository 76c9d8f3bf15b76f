"""The profile stage times a target's variants interleaved; the check stage's verdicts are
CI-aware (pass / FAIL / re-measure once, then "unreliable"). Verdict logic on fake reports
and samples: no assertions on real latency values."""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from edgeprune.budget_check import FAIL, PASS, UNRELIABLE
from edgeprune.pipeline import stages as S
from edgeprune.pipeline.report import format_markdown
from edgeprune.profile import validate_report
from edgeprune.profile.stats import summarize
from edgeprune.targets import target_from_dict

VARIANTS = ["dense", "pruned", "pruned-int8"]


# ---- a real tiny run: the profile reports say how they were measured -----------------------


def _names(outcome):
    base = outcome.report["model"]["name"]  # [model] name, or the name the spec gives
    return [f"{base}-dense", base, f"{base}-int8"]


def test_profile_reports_are_interleaved(tiny_run):
    _, out, outcome = tiny_run
    reports = {v: json.loads((out / "profile" / f"{v}.x86-ort-1t.json").read_text()) for v in VARIANTS}
    ids = {r["interleaved"]["id"] for r in reports.values()}
    assert len(ids) == 1
    for k, (variant, r) in enumerate(reports.items()):
        validate_report(r, variant)
        assert r["interleaved"]["variants"] == VARIANTS and r["interleaved"]["position"] == k
        assert r["interleaved"]["models"] == _names(outcome)
        assert r["model"]["name"] == r["interleaved"]["models"][k]
        assert len(r["samples_ms"]) == r["runs"] == 5 and r["target"] == "x86-ort-1t"
    prof = outcome.records["profile"]["result"]["x86-ort-1t"]
    assert prof["pruned"]["interleaved_with"] == ["dense", "pruned-int8"]
    latency = {v: outcome.report["variants"][v]["latency"]["x86-ort-1t"] for v in VARIANTS}
    dense_median = reports["dense"]["latency_ms"]["median"]
    for v in ("pruned", "pruned-int8"):
        assert latency[v]["speedup_vs_dense"] == pytest.approx(dense_median / reports[v]["latency_ms"]["median"])
        lo, hi = latency[v]["speedup_ci95"]
        assert 0 < lo <= hi
    assert latency["dense"]["speedup_vs_dense"] == 1.0 and latency["dense"]["speedup_ci95"] is None
    text = (out / "report.md").read_text()
    assert "| median ms | median 95% CI | p90 ms | speedup vs dense | speedup 95% CI |" in text
    assert "timed in one interleaved loop" in text
    for c in outcome.report["checks"]:
        if c["kind"] == "latency":
            assert c["verdict"] in (PASS, FAIL, UNRELIABLE) and c["median_ci95"] and c["ratio_ci95"]
    assert outcome.report["unreliable_policy"] == "fail"


# ---- verdict logic on fake reports -------------------------------------------------------------


class _Cfg:
    def __getitem__(self, key):
        return {"model": {"name": "m"}}[key]


def _ctx(tmp_path):
    return S.Context(_Cfg(), tmp_path, echo=lambda line: None)


def _target(latency_ms=None, max_ratio=None):
    budgets = {"latency_ms": latency_ms} if latency_ms else {}
    if max_ratio is not None:
        budgets["max_ratio"] = max_ratio
    return target_from_dict({"name": "t", "description": "", "align": 16, "profile": {"batch": 1},
                             "runtime": {"name": "ort", "threads": 1}, "budgets": budgets})


def _report(name, samples, loop="loop-1"):
    return {
        "model": {"name": name, "path": f"{name}.onnx", "inputs": [{"name": "input", "shape": [1, 3, 8, 8]}]},
        "target": "t", "runtime": "ort", "runtime_version": "1.0", "device": "CPU", "threads": 1,
        "precision": "f32", "batch": 1, "machine": {"cpu": "X"}, "runs": len(samples),
        "latency_ms": summarize(samples).to_dict(), "samples_ms": list(samples),
        "interleaved": {"id": loop, "models": ["m-dense", "m"], "variants": ["dense", "pruned"]},
    }


def _samples(center, spread, n):
    """n samples evenly spread over ``center`` +- ``spread`` (median ``center``)."""
    return list(np.linspace(center - spread, center + spread, n))


def _reports(tmp_path, pruned_center, spread, n, where="profile", loop="loop-1"):
    dense = _samples(10.0, spread, n)
    pruned = [d * pruned_center / 10.0 for d in dense]
    return {
        "dense": (str(tmp_path / where / "dense.t.json"), _report("m-dense", dense, loop)),
        "pruned": (str(tmp_path / where / "pruned.t.json"), _report("m", pruned, loop)),
    }


class _Remeasure:
    def __init__(self, reports):
        self.reports, self.calls = reports, 0

    def __call__(self):
        self.calls += 1
        return self.reports


def _pruned(checks):
    (c,) = [c for c in checks if c["variant"] == "pruned"]
    return c


def test_ci_inside_budget_passes_without_remeasuring(tmp_path):
    remeasure = _Remeasure(None)
    checks = S.latency_checks(_ctx(tmp_path), "t", _target({"m": 10.0}), _reports(tmp_path, 8.0, 1.0, 15),
                              remeasure, "fail")
    c = _pruned(checks)
    assert c["verdict"] == PASS and c["passed"] and remeasure.calls == 0
    assert c["median_ci95"][1] < 10.0 and c["report"] == "profile/pruned.t.json" and "remeasured" not in c


def test_ci_outside_budget_fails_without_remeasuring(tmp_path):
    remeasure = _Remeasure(None)
    checks = S.latency_checks(_ctx(tmp_path), "t", _target({"m": 7.0}), _reports(tmp_path, 8.0, 1.0, 15),
                              remeasure, "warn")
    c = _pruned(checks)
    assert c["verdict"] == FAIL and not c["passed"] and remeasure.calls == 0


def test_straddling_is_remeasured_then_unreliable(tmp_path):
    ctx, target = _ctx(tmp_path), _target({"m": 8.0})
    remeasure = _Remeasure(_reports(tmp_path, 8.0, 1.0, 45, where="check/remeasured", loop="loop-2"))
    checks = S.latency_checks(ctx, "t", target, _reports(tmp_path, 8.0, 1.0, 15), remeasure, "fail")
    c = _pruned(checks)
    assert remeasure.calls == 1
    assert c["verdict"] == UNRELIABLE and not c["passed"]
    assert c["runs"] == 45 and c["report"] == "check/remeasured/pruned.t.json"
    assert c["remeasured"]["first"]["runs"] == 15 and c["remeasured"]["first"]["report"] == "profile/pruned.t.json"
    lo, hi = c["median_ci95"]
    assert lo <= 8.0 <= hi
    assert c["notes"][0].startswith("unreliable: still within noise after re-measuring once with 45 runs")
    assert "95% CI" in c["notes"][0] and any("lies inside the median's 95% CI" in n for n in c["notes"])
    # the same, only warned about
    (w,) = [x for x in S.latency_checks(ctx, "t", target, _reports(tmp_path, 8.0, 1.0, 15),
                                        _Remeasure(remeasure.reports), "warn") if x["variant"] == "pruned"]
    assert w["verdict"] == UNRELIABLE and w["passed"]


def test_straddling_then_clear_after_remeasuring(tmp_path):
    remeasure = _Remeasure(_reports(tmp_path, 7.0, 1.0, 45, where="check/remeasured", loop="loop-2"))
    checks = S.latency_checks(_ctx(tmp_path), "t", _target({"m": 8.0}), _reports(tmp_path, 8.0, 1.0, 15),
                              remeasure, "fail")
    c = _pruned(checks)
    assert remeasure.calls == 1 and c["verdict"] == PASS and c["passed"] and c["remeasured"]["runs"] == 45
    assert c["notes"][0].startswith("first measurement (15 runs) was within noise")


def test_ratio_verdicts_use_the_paired_samples(tmp_path):
    ctx = _ctx(tmp_path)
    # every round: pruned = 0.5 x dense exactly, however noisy dense is -> the paired CI is [0.5, 0.5]
    for max_ratio, verdict in ((0.6, PASS), (0.4, FAIL), (0.5, PASS)):
        remeasure = _Remeasure(None)
        c = _pruned(S.latency_checks(ctx, "t", _target(max_ratio=max_ratio), _reports(tmp_path, 5.0, 8.0, 15),
                                     remeasure, "fail"))
        assert c["verdict"] == verdict and remeasure.calls == 0, max_ratio
        assert c["ratio_ci95"] == pytest.approx([0.5, 0.5])
    # the same medians from two separate loops: the CI comes from both medians' CIs, much wider
    reports = _reports(tmp_path, 5.0, 8.0, 15)
    reports["pruned"][1]["interleaved"]["id"] = "another-loop"
    again = _reports(tmp_path, 5.0, 8.0, 45, where="check/remeasured", loop="loop-3")
    again["pruned"][1]["interleaved"]["id"] = "yet-another-loop"
    remeasure = _Remeasure(again)
    c = _pruned(S.latency_checks(ctx, "t", _target(max_ratio=0.6), reports, remeasure, "fail"))
    assert remeasure.calls == 1 and c["verdict"] == UNRELIABLE
    assert any("from the two medians' CIs" in n for n in c["notes"])


def test_only_ambiguous_verdicts_are_replaced(tmp_path):
    reports = _reports(tmp_path, 8.0, 1.0, 15)
    dense_budget = {"m-dense": 20.0, "m": 8.0}  # dense clearly passes, pruned straddles
    remeasure = _Remeasure(_reports(tmp_path, 8.0, 1.0, 45, where="check/remeasured", loop="loop-2"))
    checks = S.latency_checks(_ctx(tmp_path), "t", _target(dense_budget), reports, remeasure, "fail")
    by = {c["variant"]: c for c in checks}
    assert by["dense"]["verdict"] == PASS and by["dense"]["report"] == "profile/dense.t.json"
    assert by["pruned"]["verdict"] == UNRELIABLE and by["pruned"]["report"] == "check/remeasured/pruned.t.json"


# ---- the check stage end to end, re-measuring through a fake interleaved profiler ---------------


def test_check_stage_remeasures_and_reports_unreliable(tiny_run, tmp_path, monkeypatch):
    from edgeprune.pipeline import load_config
    from edgeprune.profile import compare

    config, out, outcome = tiny_run
    folder = tmp_path / "c"
    shutil.copytree(config.parent, folder)
    cfg = load_config(folder / config.name)
    out = folder / "out"
    real = {v: json.loads((out / "profile" / f"{v}.x86-ort-1t.json").read_text()) for v in VARIANTS}

    def fake_reports(n, loop):
        dense = _samples(2.0, 0.2, n)
        reports = []
        for v, factor in zip(VARIANTS, (1.0, 0.5, 0.4)):
            r = copy.deepcopy(real[v])
            samples = [d * factor for d in dense]
            r.update(samples_ms=samples, latency_ms=summarize(samples).to_dict(), runs=n)
            r["interleaved"]["id"] = loop
            reports.append(r)
        return reports

    for v, r in zip(VARIANTS, fake_reports(5, "first")):
        (out / "profile" / f"{v}.x86-ort-1t.json").write_text(json.dumps(r))
    calls = []

    def fake_interleaved(paths, runtime, settings, config, *, names, labels, target, **kw):
        calls.append({"paths": [Path(p) for p in paths], "runs": config.runs, "labels": list(labels),
                      "names": list(names), "target": target})
        return fake_reports(config.runs, "again")

    monkeypatch.setattr(compare, "profile_models_interleaved", fake_interleaved)
    cfg.sections["budgets"]["latency_ms"] = {"pruned": 1.0}  # the pruned median: inside its CI
    ctx = S.Context(cfg, out, echo=lambda line: None,
                    results={name: copy.deepcopy(r["result"]) for name, r in outcome.records.items()})
    (out / "check").mkdir(exist_ok=True)
    result = S.stage_check(ctx, out / "check")
    assert len(calls) == 1 and calls[0]["runs"] == 15 and calls[0]["labels"] == VARIANTS
    assert calls[0]["names"] == _names(outcome) and calls[0]["target"] == "x86-ort-1t"
    assert [p.name for p in calls[0]["paths"]] == ["model.onnx", "model.onnx", "model.onnx"]
    for v in VARIANTS:
        assert json.loads((out / "check" / "remeasured" / f"{v}.x86-ort-1t.json").read_text())["runs"] == 15
    by = {c["variant"]: c for c in result["checks"] if c["kind"] == "latency"}
    assert by["pruned"]["verdict"] == UNRELIABLE and not by["pruned"]["passed"]
    assert by["pruned-int8"]["verdict"] == PASS and by["pruned-int8"]["report"] == "profile/pruned-int8.x86-ort-1t.json"
    assert result["passed"] is False and result["unreliable"] == "fail"
    assert json.loads((out / "check" / "check.json").read_text()) == json.loads(json.dumps(result))

    report = copy.deepcopy(outcome.report)
    report.update(checks=result["checks"], passed=result["passed"])
    text = format_markdown(report)
    assert "| latency | x86-ort-1t | pruned | median 1.000 [" in text and "| unreliable |" in text
    assert "- note, pruned on x86-ort-1t: unreliable: still within noise after re-measuring once with 15 runs" in text
    assert "**BUDGET CHECK UNRELIABLE**" in text

    cfg.sections["budgets"]["unreliable"] = "warn"  # what config.py validates once it knows the key
    calls.clear()
    warned = S.stage_check(ctx, out / "check")
    assert len(calls) == 1 and warned["passed"] is True and warned["unreliable"] == "warn"
    report.update(checks=warned["checks"], passed=warned["passed"])
    assert "but 1 verdict(s) are unreliable" in format_markdown(report)
