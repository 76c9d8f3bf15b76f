"""The protocol every pruning method follows, and the registry that finds them by name."""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable, Protocol, runtime_checkable

from edgeprune.errors import MethodError

if TYPE_CHECKING:
    import numpy as np
    from torch import nn

    from edgeprune.graph import ChannelGraph


@runtime_checkable
class ImportanceMethod(Protocol):
    """A one-shot criterion: one score per root channel of every prunable group.

    Higher means more important. Scores need not be comparable across groups: the budget
    allocator normalises them per group.
    """

    name: str

    def scores(self, model: "nn.Module", graph: "ChannelGraph") -> list["np.ndarray"]: ...


_REGISTRY: dict[str, Callable[[], ImportanceMethod]] = {}


def register(name: str):
    """Class decorator: make a method available as ``--method name``."""

    def wrap(cls):
        if name in _REGISTRY:
            raise ValueError(f"method {name!r} registered twice")
        cls.name = name
        _REGISTRY[name] = cls
        return cls

    return wrap


def get_method(name: str) -> ImportanceMethod:
    if name not in _REGISTRY:
        raise MethodError(f"unknown pruning method {name!r}; available: {', '.join(sorted(_REGISTRY))}")
    return _REGISTRY[name]()


def available_methods() -> list[str]:
    return sorted(_REGISTRY)
