"""Budget checks on synthetic reports (pure; no runtime)."""

from __future__ import annotations

import json

import pytest

from edgeprune.budget_check import (
    BASELINE,
    FAIL,
    NO_BUDGET,
    PASS,
    check_budgets,
    format_verdicts,
    setup_differences,
)
from edgeprune.errors import BudgetError
from edgeprune.targets import target_from_dict


def make_target(latency_ms=None, max_ratio=None, name="t"):
    budgets = {}
    if latency_ms:
        budgets["latency_ms"] = latency_ms
    if max_ratio is not None:
        budgets["max_ratio"] = max_ratio
    return target_from_dict({"name": name, "description": "", "align": 16, "profile": {"batch": 1},
                             "runtime": {"name": "ort", "threads": 1}, "budgets": budgets})


def report(name, median, target="t", ci=None, **over):
    r = {
        "model": {"name": name, "path": f"{name}.onnx", "inputs": [{"name": "input", "shape": [1, 3, 8, 8]}]},
        "target": target, "runtime": "ort", "runtime_version": "1.0", "device": "CPU", "threads": 1,
        "precision": "f32", "batch": 1, "machine": {"cpu": "X"},
        "latency_ms": {"median": median, "median_ci95": list(ci or (median * 0.99, median * 1.01))},
    }
    r.update(over)
    return r


def test_absolute_budget_pass_and_fail():
    target = make_target({"a": 10.0, "b": 10.0})
    v = check_budgets([("a.json", report("a", 9.0)), ("b.json", report("b", 11.0))], target)
    assert [x.status for x in v] == [PASS, FAIL]
    assert v[1].budget_ms == 10.0 and v[1].failed


def test_no_budget_passes_visibly_unless_strict():
    target = make_target({"a": 10.0})
    (v,) = check_budgets([("c.json", report("c", 50.0))], target)
    assert v.status == NO_BUDGET and not v.failed
    assert any("no budget for model 'c'" in n for n in v.notes)
    assert "no budget" in format_verdicts([v], target)
    (strict,) = check_budgets([("c.json", report("c", 50.0))], target, strict=True)
    assert strict.status == FAIL


def test_relative_budget_against_baseline():
    target = make_target(max_ratio=0.8)
    dense = ("dense.json", report("dense", 10.0))
    v = check_budgets([dense, ("fast.json", report("fast", 7.0)), ("slow.json", report("slow", 9.0))], target, dense)
    assert [x.status for x in v] == [BASELINE, PASS, FAIL]
    assert v[1].ratio == pytest.approx(0.7) and v[1].max_ratio == 0.8
    assert v[0].ratio is None


def test_both_budgets_must_hold():
    target = make_target({"fast": 6.0}, max_ratio=0.8)
    dense = ("dense.json", report("dense", 10.0))
    (v,) = check_budgets([("fast.json", report("fast", 7.0))], target, dense)
    assert v.ratio == pytest.approx(0.7) and v.status == FAIL  # ratio ok, absolute broken


def test_budget_inside_ci_is_noted():
    target = make_target({"a": 10.0})
    (v,) = check_budgets([("a.json", report("a", 9.9, ci=(9.5, 10.3)))], target)
    assert v.status == PASS and any("within noise" in n for n in v.notes)


def test_mismatched_setups_are_errors():
    target = make_target({"a": 10.0}, max_ratio=0.9)
    with pytest.raises(BudgetError, match="profiled on target 'other', checked against 't'"):
        check_budgets([("a.json", report("a", 5.0, target="other"))], target)
    with pytest.raises(BudgetError, match=r"measured with threads 4 \(target: 1\)"):
        check_budgets([("a.json", report("a", 5.0, target=None, threads=4))], target)
    with pytest.raises(BudgetError, match="measured at batch 4, but t's budgets are for batch 1"):
        check_budgets([("a.json", report("a", 5.0, batch=4))], target)
    dense = ("dense.json", report("dense", 10.0))
    with pytest.raises(BudgetError, match="measured differently: precision 'bf16' vs 'f32'"):
        check_budgets([("a.json", report("a", 5.0, precision="bf16"))], target, dense)
    with pytest.raises(BudgetError, match="has no budgets.max_ratio"):
        check_budgets([("a.json", report("a", 5.0))], make_target({"a": 1.0}), dense)


def test_untargeted_report_with_matching_settings_is_accepted_with_a_note():
    (v,) = check_budgets([("a.json", report("a", 5.0, target=None))], make_target({"a": 10.0}))
    assert v.status == PASS and any("without --target" in n for n in v.notes)


def test_setup_differences_and_json():
    a = report("a", 1.0)
    b = report("b", 1.0, machine={"cpu": "Y"})
    b["model"]["inputs"][0]["shape"] = [1, 3, 16, 16]
    diffs = setup_differences(a, b)
    assert any(d.startswith("cpu") for d in diffs) and any(d.startswith("input shapes") for d in diffs)
    (v,) = check_budgets([("a.json", a)], make_target({"a": 2.0}))
    assert json.loads(json.dumps(v.to_dict()))["verdict"] == PASS
