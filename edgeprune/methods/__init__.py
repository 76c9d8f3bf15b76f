"""Pruning methods, one per file, registered by name (``--method NAME``)."""

from edgeprune.methods import bn_scale, crsfp, dtp, magnitude, random, sfp  # noqa: F401  (registration)
from edgeprune.methods import thinet  # noqa: F401
from edgeprune.methods import he2017  # noqa: F401
from edgeprune.methods import slimming  # noqa: F401
from edgeprune.methods import han  # noqa: F401
from edgeprune.methods import sss  # noqa: F401
from edgeprune.methods import resrep  # noqa: F401
from edgeprune.methods import reprune  # noqa: F401
from edgeprune.methods.base import (
    ImportanceMethod,
    available_methods,
    get_method,
    method_options,
    register,
)

__all__ = ["ImportanceMethod", "available_methods", "get_method", "method_options", "register"]
