"""Cost model: FLOPs and parameters as pure functions of the kept width of every channel group.

What is counted (the convention of fvcore/thop and of the pruning papers):
- FLOPs are multiply-accumulates (MACs) of Conv and Linear layers for ONE input sample.
  BatchNorm, activations, pooling and additions are not counted (BN folds into the conv
  at export; the rest is small).
- Params are the trainable parameters of the whole model: Conv/Linear weights and biases and
  BatchNorm affine parameters scale with the widths; anything else is a constant.

Each layer's cost is ``coef * in_width * out_width`` (or ``coef * out_width`` for depthwise
convs), where a width is a linear expression in the group widths plus a fixed part.
No torch here: numbers in, numbers out.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence


@dataclass(frozen=True)
class Width:
    """``fixed + sum(scale * widths[group])``: a layer's input or output channel count."""

    fixed: float = 0.0
    parts: tuple[tuple[int, float], ...] = ()

    def __call__(self, widths: Sequence[float]) -> float:
        return self.fixed + sum(scale * widths[g] for g, scale in self.parts)

    @property
    def groups(self) -> tuple[int, ...]:
        return tuple(g for g, _ in self.parts)


@dataclass(frozen=True)
class Term:
    """``coef * a(widths) * b(widths)``; ``b`` is None for terms linear in one width."""

    layer: str
    coef: float
    a: Width
    b: Width | None = None

    def __call__(self, widths: Sequence[float]) -> float:
        value = self.coef * self.a(widths)
        return value * self.b(widths) if self.b is not None else value

    @property
    def groups(self) -> tuple[int, ...]:
        return self.a.groups + (self.b.groups if self.b is not None else ())


@dataclass(frozen=True)
class CostModel:
    """FLOPs and params of a model as functions of its group widths."""

    sizes: tuple[int, ...]  # dense width of every group
    flops_terms: tuple[Term, ...]
    params_terms: tuple[Term, ...]
    params_const: float = 0.0
    _touching: dict = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        for metric, terms in (("flops", self.flops_terms), ("params", self.params_terms)):
            index: dict[int, list[Term]] = {g: [] for g in range(len(self.sizes))}
            for term in terms:
                for g in set(term.groups):
                    index[g].append(term)
            self._touching[metric] = index

    def cost(self, metric: str, widths: Sequence[float]) -> float:
        if metric == "flops":
            return sum(t(widths) for t in self.flops_terms)
        if metric == "params":
            return self.params_const + sum(t(widths) for t in self.params_terms)
        raise ValueError(f"unknown cost metric {metric!r}; use 'flops' or 'params'")

    def flops(self, widths: Sequence[float]) -> float:
        return self.cost("flops", widths)

    def params(self, widths: Sequence[float]) -> float:
        return self.cost("params", widths)

    def dense(self, metric: str) -> float:
        return self.cost(metric, self.sizes)

    def group_cost(self, metric: str, group: int, widths: Sequence[float]) -> float:
        """The part of the cost that depends on ``group``'s width (for deltas)."""
        return sum(t(widths) for t in self._touching[metric][group])

    def neighbours(self, metric: str, group: int) -> set[int]:
        """Groups whose cost delta changes when ``group``'s width changes."""
        out: set[int] = set()
        for t in self._touching[metric][group]:
            out.update(t.groups)
        return out
