"""Several models timed in one interleaved loop -> one profile report each; ratio CIs.
Tiny ONNX models and few runs: no assertions on latency values."""

from __future__ import annotations

import json

import numpy as np
import pytest

from edgeprune.budget_check import paired_samples, ratio_interval
from edgeprune.errors import SpecError
from edgeprune.profile import ProfileConfig, load_report, profile_model, validate_report
from edgeprune.profile.compare import profile_models_interleaved
from edgeprune.profile.stats import bootstrap_median_ratio_ci, ratio_ci_from_cis
from edgeprune.runtime import make_settings


def _three(tmp_path, onnx_models):
    return [onnx_models.tiny_cnn(tmp_path / f"{n}.onnx", batch=1, channels=c)
            for n, c in (("dense", 32), ("slim", 16), ("slimmer", 8))]


def test_one_report_per_model_same_schema_as_profile_model(tmp_path, onnx_models):
    pytest.importorskip("onnxruntime")
    paths = _three(tmp_path, onnx_models)
    settings = make_settings("ort", {"threads": 1})
    config = ProfileConfig(runs=4, warmup=1)
    reports = profile_models_interleaved(paths, "ort", settings, config, names=["m-dense", "m", None],
                                         labels=["dense", "pruned", "pruned-int8"], target="t")
    single = profile_model(paths[0], "ort", settings, config, target="t")
    assert len(reports) == 3
    ids = {r["interleaved"]["id"] for r in reports}
    assert len(ids) == 1 and len(ids.pop()) == 32
    for k, r in enumerate(reports):
        validate_report(r)
        assert set(r) == set(single) | {"interleaved"}
        assert set(r["latency_ms"]) == set(single["latency_ms"])
        assert r["schema"] == single["schema"] and r["target"] == "t" and r["runs"] == 4 and r["warmup"] == 1
        assert len(r["samples_ms"]) == 4 and r["latency_ms"]["n"] == 4
        assert r["interleaved"]["models"] == ["m-dense", "m", "slimmer"]
        assert r["interleaved"]["variants"] == ["dense", "pruned", "pruned-int8"]
        assert r["interleaved"]["position"] == k
        assert r["input_pool"] == reports[0]["input_pool"]
        path = tmp_path / f"r{k}.json"
        path.write_text(json.dumps(r))
        assert load_report(path)["model"]["name"] == r["interleaved"]["models"][k]
    assert paired_samples(reports[1], reports[0]) is not None
    assert paired_samples(reports[1], single) is None  # another loop: rounds do not pair
    (lo, hi), how = ratio_interval(reports[1], reports[0])
    assert 0 < lo <= hi and "paired bootstrap over 4 interleaved rounds" in how


def test_names_labels_and_inputs_must_match(tmp_path, onnx_models):
    pytest.importorskip("onnxruntime")
    a = onnx_models.tiny_cnn(tmp_path / "a.onnx", size=16)
    b = onnx_models.tiny_cnn(tmp_path / "b.onnx", size=32)
    settings = make_settings("ort", {"threads": 1})
    config = ProfileConfig(runs=2, warmup=0)
    with pytest.raises(SpecError, match="2 models but 1 names"):
        profile_models_interleaved([a, a], "ort", settings, config, names=["x"])
    with pytest.raises(SpecError, match="2 models but 3 labels"):
        profile_models_interleaved([a, a], "ort", settings, config, labels=["x", "y", "z"])
    with pytest.raises(SpecError, match="take different inputs"):
        profile_models_interleaved([a, b], "ort", settings, config)


def test_paired_bootstrap_cancels_shared_drift():
    rng = np.random.default_rng(1)
    drift = rng.uniform(1.0, 4.0, 200)  # both models slowed alike in each round
    den = drift * (1 + 0.01 * rng.standard_normal(200))
    num = 0.5 * drift * (1 + 0.01 * rng.standard_normal(200))
    paired = bootstrap_median_ratio_ci(num, den, paired=True)
    unpaired = bootstrap_median_ratio_ci(num, den, paired=False)
    assert paired[0] < 0.5 < paired[1] and paired[1] - paired[0] < 0.02
    assert unpaired[1] - unpaired[0] > 5 * (paired[1] - paired[0])
    assert bootstrap_median_ratio_ci(num, den) == paired  # seeded: reproducible
    with pytest.raises(ValueError, match="equal length"):
        bootstrap_median_ratio_ci([1.0, 2.0], [1.0], paired=True)


def test_ratio_ci_from_two_cis():
    lo, hi = ratio_ci_from_cis(5.0, (4.5, 5.5), 10.0, (9.0, 11.0))
    assert lo < 0.5 < hi
    # log-scale quadrature: narrower than interval arithmetic, wider than either CI alone
    assert 4.5 / 11.0 < lo < 4.5 / 10.0 and 5.5 / 10.0 < hi < 5.5 / 9.0
    assert ratio_ci_from_cis(5.0, (5.0, 5.0), 10.0, (10.0, 10.0)) == pytest.approx((0.5, 0.5))
    with pytest.raises(ValueError):
        ratio_ci_from_cis(5.0, (0.0, 6.0), 10.0, (9.0, 11.0))
