import torch

from edgeprune.pruning.parity import compare_outputs, fixed_input


def test_fixed_input_is_reproducible():
    assert torch.equal(fixed_input((2, 3, 4, 4), seed=3), fixed_input((2, 3, 4, 4), seed=3))


def test_compare_outputs_restores_mode_and_measures():
    a = torch.nn.Linear(4, 2).train()
    b = torch.nn.Linear(4, 2)
    b.load_state_dict(a.state_dict())
    assert compare_outputs(a, b, torch.randn(3, 4)).max_abs_diff == 0
    assert a.training
    with torch.no_grad():
        b.bias += 1
    p = compare_outputs(a, b, torch.randn(3, 4))
    assert abs(p.max_abs_diff - 1) < 1e-6 and not p.ok(1e-4)
