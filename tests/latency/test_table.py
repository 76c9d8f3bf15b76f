"""Latency tables: the width grid, the separable interpolation (exact where the latency is
separable), the one-operator ONNX graphs, JSON round trip with the machine check, and the CLI
building and then extending a table (points measured once)."""

import json

import numpy as np
import pytest
from click.testing import CliRunner

from edgeprune.cli import main
from edgeprune.latency.ops import OpSignature, graph_bytes
from edgeprune.latency.table import Layer, LatencyTable, LatencyTableError, check_points, layer_points, width_grid

CONV = OpSignature("conv", (3, 3), (1, 1), (1, 1), (1, 1), False, (14, 14), True)
DW = OpSignature("conv", (3, 3), (1, 1), (1, 1), (1, 1), True, (14, 14), True)


def test_width_grid_is_bounded_aligned_and_ends_at_full():
    assert width_grid(64, 16, 8) == [16, 32, 48, 64]
    g = width_grid(512, 16, 6)
    assert len(g) <= 6 and g[-1] == 512 and g[0] == 112 and all(w % 16 == 0 for w in g)  # floor ceil(0.2 x 512)
    assert width_grid(3, 16, 8) == [1, 3]  # narrower than a step: the floor and the full width


def _table(fn, layer):
    """A table whose points follow ``fn(cin, cout)`` at exactly the points a build would measure."""
    table = LatencyTable(target="t", machine={"cpu": "c"}, runtime={"runtime": "ort"})
    table.entries[layer.signature.key()] = {
        "signature": layer.signature.to_json(),
        "points": {f"{a},{b}": fn(a, b) for a, b in layer_points(layer, 16, 6)}}
    return table


def test_prediction_is_exact_for_overhead_plus_traffic_plus_macs_and_a_slow_point_is_dropped():
    layer = Layer("conv", CONV, 256, 128)
    fn = lambda a, b: 0.05 + 2e-2 * a + 3e-2 * b + 1e-5 * a * b  # noqa: E731 (c0 + c1 a + c2 b + c3 a b)
    table = _table(fn, layer)
    for a, b in [(112, 48), (160, 96), (200, 100), (64, 32), (256, 128)]:  # off the sweeps, between grid points
        assert table.predict(CONV, a, b, (256, 128)) == pytest.approx(fn(a, b), rel=1e-9)
    # one slow spell at the full width (3x): the fit drops it and still predicts the rest
    table.entries[CONV.key()]["points"]["256,128"] = 3 * fn(256, 128)
    table._curves.clear()
    assert table.curve(CONV).dropped == [(256, 128)]
    for a, b in [(112, 48), (256, 128), (128, 64)]:
        assert table.predict(CONV, a, b, (256, 128)) == pytest.approx(fn(a, b), rel=1e-6)
    assert check_points(layer, 16, 6, 2) and all(a < 256 and b < 128 for a, b in check_points(layer, 16, 6, 2))
    dw = Layer("dw", DW, 96, 96)
    table = _table(lambda a, b: 0.01 + 0.001 * a, dw)
    assert table.predict(DW, 40, 40, (96, 96)) == pytest.approx(0.05)
    with pytest.raises(LatencyTableError, match="has no operator 'gemm relu=0'"):
        table.predict(OpSignature("gemm", relu=False), 4, 4, (8, 8))
    with pytest.raises(LatencyTableError, match="no sweep of"):
        _table(fn, layer).predict(CONV, 4, 4, (512, 512))


def test_round_trip_and_tables_refuse_another_machine(tmp_path):
    table = _table(lambda a, b: 1.0, Layer("conv", CONV, 64, 64))
    path = table.save(tmp_path / "t.json")
    back = LatencyTable.load(path)
    assert back.to_json() == table.to_json()
    back.check_same_place({"cpu": "c"}, {"runtime": "ort"}, "here")
    with pytest.raises(LatencyTableError, match="latency tables do not travel"):
        back.check_same_place({"cpu": "other"}, {"runtime": "ort"}, "--table t.json")
    (tmp_path / "bad.json").write_text(json.dumps({"schema": "x"}))
    with pytest.raises(LatencyTableError, match="not a latency table"):
        LatencyTable.load(tmp_path / "bad.json")


@pytest.mark.parametrize("sig,cin,cout,shape", [(CONV, 8, 16, (1, 16, 14, 14)), (DW, 8, 8, (1, 8, 14, 14)),
                                                (OpSignature("gemm", relu=False), 8, 4, (1, 4))])
def test_one_operator_graphs_run_in_onnx_runtime(sig, cin, cout, shape):
    import onnxruntime as ort

    session = ort.InferenceSession(graph_bytes(sig, cin, cout), providers=["CPUExecutionProvider"])
    x = np.ones((1, cin, *sig.hw), np.float32) if sig.op == "conv" else np.ones((1, cin), np.float32)
    (y,) = session.run(None, {"x": x})
    assert y.shape == shape and np.isfinite(y).all()


def test_cli_builds_a_table_then_reuses_its_points(tmp_path):
    out = tmp_path / "r20.json"
    args = ["latency-table", "edgeprune:resnet20", "--target", "x86-ort-1t", "--out", str(out), "--points", "2",
            "--runs", "2", "--warmup", "0", "--checks", "1", "--no-progress"]
    first = CliRunner().invoke(main, args)
    assert first.exit_code == 0, first.output
    data = json.loads(out.read_text())
    assert data["schema"] == "edgeprune.latency_table/1" and data["runtime"]["runtime"] == "ort"
    assert data["machine"]["isa"] is not None and data["runtime"]["threads"] == 1
    convs = [layer for layer in data["layers"] if layer["signature"]["op"] == "conv"]
    assert convs[0]["name"] == "conv1" and convs[0]["sweep_in"] is False  # the image's channel is not pruned
    checks = sum(len(layer["checks"]) for layer in data["layers"])
    points = sum(len(e["points"]) for e in data["entries"].values())
    print(f"\n{first.output}")
    assert checks > 0 and f"{points} points in the table" in first.output
    second = CliRunner().invoke(main, [*args[:-3], "--checks", "0", "--no-progress"])  # --checks 0: nothing new to time
    assert second.exit_code == 0, second.output
    assert f"{points} points in the table; 0 timed now" in second.output
