"""Model specs and the built-in zoo."""

from edgeprune.models.spec import (
    ModelSpec,
    build_model,
    load_weights,
    parse_input_shape,
    parse_spec,
)

__all__ = ["ModelSpec", "build_model", "load_weights", "parse_input_shape", "parse_spec"]
