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


def method_options(name: str) -> list[str]:
    """The option names ``get_method(name, **options)`` accepts (the fields of the method's
    ``config_class``; none for methods without one)."""
    if name not in _REGISTRY:
        raise MethodError(f"unknown pruning method {name!r}; available: {', '.join(sorted(_REGISTRY))}")
    config_class = getattr(_REGISTRY[name], "config_class", None)
    if config_class is None:
        return []
    from dataclasses import fields

    return [f.name for f in fields(config_class)]


def get_method(name: str, **options) -> ImportanceMethod:
    """The method registered as ``name``, built with ``options`` (fields of its config class,
    e.g. ``get_method("crsfp", consistency_lambda=1.0)``)."""
    allowed = method_options(name)
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise MethodError(
            f"method {name!r} has no option {unknown[0]!r}; "
            + (f"allowed: {', '.join(allowed)}" if allowed else "it takes no options")
        )
    cls = _REGISTRY[name]
    if getattr(cls, "config_class", None) is None:
        return cls()
    return cls(cls.config_class(**options))


def available_methods() -> list[str]:
    return sorted(_REGISTRY)
