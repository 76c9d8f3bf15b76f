"""Shared by the ThiNet / He et al. 2017 tests (import as `from consumer_helpers import ...`):
real Fashion-MNIST features of resnet20's consumers, and the held-out output error of a
selection (with or without refit weights)."""

from __future__ import annotations

import copy

import torch

from edgeprune.data.fashion_mnist import DEFAULT_ROOT, FILES

REAL = all((DEFAULT_ROOT / name).is_file() for pair in FILES.values() for name in pair)
BUDGET = "flops=0.5"


def real_batches(skip: int, n: int, batch: int = 64):
    """Normalised real Fashion-MNIST training images [skip, skip + n) in batches."""
    from edgeprune.data import open_data
    from edgeprune.data.batches import eval_batches

    data = open_data("fashion-mnist", input_shape=(1, 1, 28, 28), train_subset=skip + n, test_subset=1)
    train = data.train
    return [b.x for b in eval_batches(train, batch)][skip // batch:]


def held_out_error(dense, consumers, rows, models_and_kept):
    """Relative output error sum_c |X (W_dense - W)^T|^2 / sum_c |X W_dense^T|^2 over every
    consumer, on held-out rows, for each (model, kept) given: W is the model's weight with the
    inputs ``kept`` drops set to 0."""
    out = []
    for model, kept in models_and_kept:
        keep = [set(k) for k in kept]
        num = den = 0.0
        for name, c in consumers.items():
            x = rows[name]
            w = model.get_submodule(name).weight.detach().double().clone()
            w = w.reshape(w.shape[0], w.shape[1], -1)
            for g, pos, roots in c.parts:
                drop = pos[torch.tensor([int(r) not in keep[g] for r in roots], dtype=torch.bool)]
                w[:, drop, :] = 0.0
            wd = dense.get_submodule(name).weight.detach().double().reshape(w.shape[0], -1)
            y = x @ wd.T
            num += float(((y - x @ w.reshape(w.shape[0], -1).T) ** 2).sum())
            den += float((y**2).sum())
        out.append(num / den)
    return out


def compare(method_names, seed=0):
    """(widths, {name: held-out error}) for l1 and each method, all at the first method's widths
    (allocated under BUDGET), on resnet20 with real features: 128 calibration images, 128
    held-out images."""
    from torch_helpers import randomize_batchnorm

    from edgeprune.methods import consumers as C
    from edgeprune.methods import get_method
    from edgeprune.methods.magnitude import group_magnitude
    from edgeprune.models import build_model
    from edgeprune.pruning.budget import Budget, allocate, select_kept
    from edgeprune.pruning.graph import ChannelGraph

    torch.manual_seed(seed)
    model, shape = build_model("edgeprune:resnet20")
    randomize_batchnorm(model)
    graph = ChannelGraph(model, shape)
    calibration, held_out = real_batches(0, 128), real_batches(128, 128)
    methods = [get_method(n) for n in method_names]
    for m in methods:
        m.calibrate(model, graph, iter(calibration))
    scores = [m.scores(model, graph) for m in methods]
    widths = allocate(graph.cost, scores[0], Budget.parse(BUDGET), 1)
    consumers = C.find_consumers(model, graph)
    rows = C.sample(model, consumers, iter(held_out), images=128, positions=10, seed=123, keep_rows=True)
    runs = [(model, select_kept(group_magnitude(graph, p=1), widths))]
    reports = []
    for m, s in zip(methods, scores):
        kept = m.select(s, widths)
        copy_ = copy.deepcopy(model)
        m.reconstruct(copy_, graph, kept)
        runs.append((copy_, kept))
        runs.append((model, kept))  # the method's selection without the refit
        reports.append(m.report())
    errors = held_out_error(model, consumers, rows, runs)
    result = {"l1": errors[0]}
    for i, n in enumerate(method_names):
        result[n] = errors[1 + 2 * i]
        result[n + " (selection only)"] = errors[2 + 2 * i]
    return graph, widths, result, reports
