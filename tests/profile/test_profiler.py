"""The timed loop and profile reports (tiny ONNX models, few runs; no timing assertions)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from edgeprune.profile import (
    ProfileConfig,
    format_report,
    profile_model,
    validate_report,
)
from edgeprune.profile.report import REQUIRED, ReportError, load_report
from edgeprune.profile.timing import (
    make_input_pool,
    pool_size,
    random_feeds,
    time_calls,
)
from edgeprune.runtime import InputSpec, RunnerError

SPECS = [InputSpec("x", (2, 3, 4, 4), np.dtype(np.float32)), InputSpec("ids", (2, 5), np.dtype(np.int64))]


def test_time_calls_interleaves_in_a_shuffled_order_and_skips_warmup():
    calls = []

    def make(name):
        return lambda feeds: calls.append((name, id(feeds)))

    pool = make_input_pool(SPECS, 3)
    a, b, c = time_calls([make("A"), make("B"), make("C")], pool, runs=20, warmup=2)
    assert len(a) == len(b) == len(c) == 20 and all(t >= 0 for t in a + b + c)
    rounds = [calls[3 * i:3 * i + 3] for i in range(22)]
    # each round: every callable once, all on the same inputs; consecutive rounds see different ones
    assert all(sorted(n for n, _ in r) == ["A", "B", "C"] and len({f for _, f in r}) == 1 for r in rounds)
    assert rounds[0][0][1] != rounds[1][0][1]
    # the order is shuffled (no callable always runs after the same one) and the same every call
    assert len({tuple(n for n, _ in r) for r in rounds}) > 1
    first = [n for n, _ in calls]
    calls.clear()
    time_calls([make("A"), make("B"), make("C")], pool, runs=20, warmup=2)
    assert [n for n, _ in calls] == first
    with pytest.raises(ValueError):
        time_calls([make("A")], pool, runs=0, warmup=0)


def test_input_pool_is_fresh_random_and_capped():
    pool = make_input_pool(SPECS, 3, seed=0)
    assert len(pool) == 3
    assert pool[0]["x"].dtype == np.float32 and pool[0]["ids"].dtype == np.int64
    assert not np.array_equal(pool[0]["x"], pool[1]["x"])
    np.testing.assert_array_equal(pool[0]["x"], make_input_pool(SPECS, 1, seed=0)[0]["x"])
    assert pool_size(SPECS, 1000) == 1000
    big = [InputSpec("x", (1, 3, 224, 224), np.dtype(np.float32))]  # 602 KB per set
    assert pool_size(big, 10_000, max_bytes=6 * 602_112) == 6
    assert pool_size(big, 10_000, max_bytes=1) == 2
    bools = random_feeds([InputSpec("m", (8,), np.dtype(np.bool_))], np.random.default_rng(0))
    assert bools["m"].dtype == np.bool_


@pytest.mark.parametrize("runtime", ["ort", "openvino"])
def test_profile_report_structure(runtime, tiny_onnx):
    pytest.importorskip("onnxruntime" if runtime == "ort" else "openvino")
    from edgeprune.runtime import make_settings

    report = profile_model(
        tiny_onnx, runtime, make_settings(runtime, {"threads": 1}), ProfileConfig(runs=7, warmup=2, batch=2),
        per_layer=True, target="my-target",
    )
    validate_report(report)
    assert report["model"] == {**report["model"], "name": "tiny", "path": str(tiny_onnx)}
    assert report["model"]["inputs"] == [{"name": "input", "shape": [2, 3, 16, 16], "dtype": "float32"}]
    assert report["runtime"] == runtime and report["threads"] == 1 and report["precision"] == "f32"
    assert report["batch"] == 2 and report["runs"] == 7 and report["warmup"] == 2 and report["target"] == "my-target"
    assert len(report["samples_ms"]) == 7 and report["input_pool"] == 9
    lat = report["latency_ms"]
    assert lat["min"] <= lat["median"] <= lat["p90"] <= lat["p99"] <= lat["max"]
    assert lat["median_ci95"][0] <= lat["median"] <= lat["median_ci95"][1]
    assert report["throughput_fps"] == pytest.approx(2 * 1000 / lat["median"])
    assert {"cpu", "isa", "usable_cores", "os", "arch"} <= set(report["machine"])
    assert report["runtime_version"] and report["edgeprune_version"]
    assert any(r["layer"] == "/layer1/conv1/Conv" for r in report["layers"])
    json.dumps(report)  # JSON-ready
    text = format_report(report)
    assert "median" in text and "/layer1/conv1/Conv" in text and "throughput" in text


def test_profile_config_validation():
    with pytest.raises(RunnerError, match=r"profile\.runs must be a positive integer, got 0"):
        ProfileConfig(runs=0).validate()
    with pytest.raises(RunnerError, match=r"profile\.batch must be a positive integer"):
        ProfileConfig(batch=True).validate()


def test_load_report_errors(tmp_path):
    with pytest.raises(ReportError, match="profile report not found"):
        load_report(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{")
    with pytest.raises(ReportError, match="not valid JSON"):
        load_report(bad)
    bad.write_text(json.dumps({"model": {"name": "m", "path": "m.onnx"}}))
    with pytest.raises(ReportError, match="missing key 'runtime'"):
        load_report(bad)
    assert "latency_ms.median" in REQUIRED


def test_default_model_name_uses_folder_for_generic_export_names():
    from edgeprune.profile.profiler import default_model_name

    assert default_model_name("runs/x/pruned/model.onnx") == "pruned"
    assert default_model_name("runs/x/resnet18.onnx") == "resnet18"
    assert default_model_name("model.xml") == "model"
