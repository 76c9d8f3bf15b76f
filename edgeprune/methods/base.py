"""The protocols pruning methods follow (one-shot `ImportanceMethod`, one-shot with data
`DataMethod`, training-time `TrainingMethod` with `MethodBase` defaults), and the registry that
finds them by name."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Iterable, Protocol, Sequence, runtime_checkable

from edgeprune.errors import MethodError

if TYPE_CHECKING:
    import numpy as np
    import torch
    from torch import nn

    from edgeprune.data.batches import Batch
    from edgeprune.pruning.graph import ChannelGraph


@runtime_checkable
class ImportanceMethod(Protocol):
    """A one-shot criterion: one score per root channel of every prunable group.

    Higher means more important. Scores need not be comparable across groups: the budget
    allocator normalises them per group.
    """

    name: str

    def scores(self, model: "nn.Module", graph: "ChannelGraph") -> list["np.ndarray"]: ...


@runtime_checkable
class DataMethod(Protocol):
    """A one-shot criterion that needs data (ThiNet, He et al. 2017); ``needs_data = True``.

    `edgeprune.pruning.one_shot.prune_one_shot` calls, in order::

        calibrate(model, graph, batches)    batches: input tensors from the training split,
                                            as many as the method wants to read
        scores(model, graph)                as ImportanceMethod; the allocator picks widths
        select(scores, widths) -> kept      the kept root channels per group at those widths
        reconstruct(dense_copy, graph, kept)  refit weights of a dense copy of the model in
                                            place; pruned channels' weights must not matter
                                            (the masked copy is what gets slimmed)
        report() -> dict                    stored as report.json[method]
    """

    name: str
    needs_data: bool

    def calibrate(self, model: "nn.Module", graph: "ChannelGraph", batches: Iterable["torch.Tensor"]) -> None: ...
    def scores(self, model: "nn.Module", graph: "ChannelGraph") -> list["np.ndarray"]: ...
    def select(self, scores: Sequence["np.ndarray"], widths: Sequence[int]) -> list[list[int]]: ...
    def reconstruct(self, model: "nn.Module", graph: "ChannelGraph", kept: Sequence[Sequence[int]]) -> None: ...
    def report(self) -> dict[str, Any]: ...


@runtime_checkable
class TrainingMethod(Protocol):
    """What a training-time method plugs into the trainer. Call order per run:

        on_train_start(trainer)              once, after the optimizer exists (and before resume)
        per step: on_step_start(step, total)  ->  loss(net, batch)
                  [net(x) calls before_forward() (training mode), then forward(model, x)]
                  -> on_step(loss) -> backward -> optimizer step -> after_step()
        on_epoch_end(epoch) -> metrics        after every epoch, before evaluation and checkpoint

    ``parameters()`` are trained with the network (no weight decay, lr x ``lr_scale``);
    ``state_dict()`` must hold only tensors, numbers, strings, lists and dicts (it is
    checkpointed with torch.save and loaded with weights_only=True).
    """

    name: str
    training_time: bool
    lr_scale: float
    views: int

    def parameters(self) -> list["nn.Parameter"]: ...
    def on_train_start(self, trainer: Any) -> None: ...
    def on_step_start(self, step: int, total_steps: int) -> None: ...
    def before_forward(self) -> None: ...
    def forward(self, model: "nn.Module", x: Any) -> "torch.Tensor": ...
    def loss(self, net: "nn.Module", batch: "Batch") -> tuple["torch.Tensor", "torch.Tensor"]: ...
    def on_step(self, loss: "torch.Tensor") -> "torch.Tensor": ...
    def after_step(self) -> None: ...
    def on_epoch_end(self, epoch: int) -> dict[str, float]: ...
    def state_dict(self) -> dict[str, Any]: ...
    def load_state_dict(self, state: dict[str, Any]) -> None: ...
    def report(self) -> dict[str, Any]: ...


class MethodBase:
    """No-op defaults for `TrainingMethod`; a method overrides what it needs."""

    name = "none"
    training_time = True
    lr_scale = 1.0
    views = 1  # two-view methods (CR-SFP) set 2 and override loss()

    def parameters(self) -> list:
        return []

    def on_train_start(self, trainer) -> None:
        pass

    def on_step_start(self, step: int, total_steps: int) -> None:
        pass

    def before_forward(self) -> None:
        pass

    def forward(self, model, x):
        """How the trainer's network runs ``x`` (two-view methods pass a tuple of views)."""
        return model(x)

    def loss(self, net, batch):
        import torch.nn.functional as F

        logits = net(batch.x)
        return F.cross_entropy(logits, batch.labels), logits

    def on_step(self, loss):
        return loss

    def after_step(self) -> None:
        pass

    def on_epoch_end(self, epoch: int) -> dict[str, float]:
        return {}

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        pass

    def report(self) -> dict[str, Any]:
        """Method-specific fields for report.json (stored under the method's name)."""
        return {}


class RunBudget:
    """For training-time methods that choose channels under the job's budget themselves
    (slimming, sss, resrep): ``set_budget``, or the budget and alignment of the trainer's run
    record (``run["budget"]``, ``run["align"]``, written by `edgeprune.train.jobs.prune_while_training`)."""

    _budget = None
    _align = 1

    def set_budget(self, budget, align: int) -> None:
        """The budget and alignment the selection is made under."""
        self._budget, self._align = budget, int(align)

    def budget_from_run(self, trainer) -> None:
        """Take the run record's budget unless `set_budget` gave one."""
        run = getattr(trainer, "run", {}) or {}
        if self._budget is None and "budget" in run:
            from edgeprune.pruning.budget import Budget

            self.set_budget(Budget.from_text(run["budget"]), run.get("align", 1))


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
