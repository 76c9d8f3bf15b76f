"""report.json contents and report.md tables."""

from __future__ import annotations

import json
import sys

import pytest

from edgeprune.pipeline.plot import pareto_plot
from edgeprune.pipeline.report import SCHEMA, format_markdown


def test_report_json_schema(tiny_run):
    _, out, outcome = tiny_run
    r = json.loads((out / "report.json").read_text())
    assert r == json.loads(json.dumps(outcome.report))
    assert r["schema"] == SCHEMA and r["name"] == "tiny"
    assert r["model"]["spec"] == "edgeprune:resnet20" and r["model"]["input_shape"] == [1, 1, 28, 28]
    assert r["model"]["dense_source"] == "trained"
    assert r["pruning"]["method"] == "dtp" and r["pruning"]["align"] == 16
    assert r["data"]["test_samples"] == 64
    assert list(r["variants"]) == ["dense", "pruned", "pruned-int8"]
    dense, pruned, int8 = (r["variants"][v] for v in ("dense", "pruned", "pruned-int8"))
    assert dense["flops_ratio"] == 1.0 and pruned["flops"] < dense["flops"] and pruned["params"] < dense["params"]
    assert int8["flops"] == pruned["flops"]
    assert 0.4 < pruned["flops_ratio"] <= 0.5
    assert int8["size_bytes"]["onnx"] < pruned["size_bytes"]["onnx"] < dense["size_bytes"]["onnx"]
    assert int8["quantization"]["method"] == "aciq" and int8["quantization"]["real_int8"] is True
    for name, v in r["variants"].items():
        assert 0.0 <= v["accuracy"]["ort"] <= 1.0, name
        lat = v["latency"]["x86-ort-1t"]
        assert lat["runtime"] == "ort" and lat["threads"] == 1 and lat["runs"] == 5
        assert 0 < lat["median_ms"] <= lat["p90_ms"]
        assert lat["speedup_vs_dense"] > 0
        assert (out / lat["report"]).is_file()
    assert dense["latency"]["x86-ort-1t"]["speedup_vs_dense"] == 1.0
    assert dense["accuracy"]["torch"] == r["variants"]["dense"]["accuracy"]["torch"]
    kinds = {(c["kind"], c["variant"]) for c in r["checks"]}
    assert {("latency", "pruned"), ("latency", "pruned-int8"), ("accuracy", "pruned")} <= kinds
    assert r["passed"] is all(c["passed"] for c in r["checks"])
    assert [s["stage"] for s in r["stages"]] == ["dense", "prune", "export", "quantize", "evaluate", "profile", "check"]
    assert all(s["elapsed_s"] >= 0 for s in r["stages"])


def test_report_md_tables(tiny_run):
    _, out, outcome = tiny_run
    text = (out / "report.md").read_text()
    assert text == format_markdown(outcome.report)
    assert "| variant | top-1 torch | top-1 ort |" in text
    assert "| x86-ort-1t | ort (f32, 1t) | pruned |" in text
    assert "## Budget checks" in text and "ratio " in text
    assert "| dense | ran |" in text


def test_plot_written_with_matplotlib(tiny_run):
    pytest.importorskip("matplotlib")  # `make setup` installs it (extra `plot`, part of `all`)
    _, out, outcome = tiny_run
    assert outcome.report["plot"] == "report.png"
    assert (out / "report.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "![accuracy vs latency](report.png)" in (out / "report.md").read_text()


def test_no_plot_without_matplotlib(tiny_run, tmp_path, monkeypatch):
    _, _, outcome = tiny_run
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib -> ImportError
    assert pareto_plot(outcome.report, tmp_path / "x.png") is False
    assert not (tmp_path / "x.png").exists()
