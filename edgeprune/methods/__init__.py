"""Pruning methods, one per file, registered by name (``--method NAME``)."""

from edgeprune.methods import bn_scale, dtp, magnitude  # noqa: F401  (registration)
from edgeprune.methods.base import ImportanceMethod, available_methods, get_method, register

__all__ = ["ImportanceMethod", "available_methods", "get_method", "register"]
