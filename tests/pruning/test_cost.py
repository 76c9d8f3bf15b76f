"""The cost model is pure arithmetic: checked by hand on tiny examples, no torch."""

import sys

from edgeprune.pruning.cost import CostModel, Term, Width


def test_bilinear_cost_by_hand():
    # conv A: 3 -> g0, 9 positions x 9 kernel; conv B: g0 -> g1, coef 4; linear: g1 -> 10
    a = Term("a", 81.0, Width(3.0), Width(0.0, ((0, 1.0),)))
    b = Term("b", 4.0, Width(0.0, ((0, 1.0),)), Width(0.0, ((1, 1.0),)))
    fc = Term("fc", 1.0, Width(0.0, ((1, 1.0),)), Width(10.0))
    cost = CostModel(sizes=(8, 16), flops_terms=(a, b, fc), params_terms=(a, b, fc), params_const=5)
    assert cost.flops([8, 16]) == 81 * 3 * 8 + 4 * 8 * 16 + 16 * 10
    assert cost.flops([4, 2]) == 81 * 3 * 4 + 4 * 4 * 2 + 2 * 10
    assert cost.params([8, 16]) == cost.flops([8, 16]) + 5
    assert cost.neighbours("flops", 0) == {0, 1}
    assert cost.group_cost("flops", 1, [8, 16]) == 4 * 8 * 16 + 16 * 10


def test_cost_module_does_not_import_torch():
    import importlib

    sys.modules.pop("edgeprune.pruning.cost", None)
    before = "torch" in sys.modules
    importlib.import_module("edgeprune.pruning.cost")
    assert before or "torch" not in sys.modules
