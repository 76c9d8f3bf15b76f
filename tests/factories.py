"""Model factories addressed by tests as ``factories:NAME`` (a user's module:function spec)."""

import torch


def tiny_factory():
    return torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.Flatten(), torch.nn.Linear(4 * 6 * 6, 2))
