"""Errors edgeprune raises on bad input. The CLI prints them without a traceback."""


class EdgepruneError(Exception):
    """Base class: a user-facing error whose message says what was wrong and what is allowed."""


class SpecError(EdgepruneError):
    """A model spec, weights file or input shape that cannot be used."""


class GraphError(EdgepruneError):
    """A model whose channel dependencies cannot be traced."""


class BudgetError(EdgepruneError):
    """A budget that is malformed or cannot be met."""


class PlanError(EdgepruneError):
    """A plan.json that is malformed or was made for another model."""


class MethodError(EdgepruneError):
    """An unknown pruning method or bad method options."""


class MissingDependencyError(EdgepruneError):
    """An optional package is not installed; the message carries the install command."""
