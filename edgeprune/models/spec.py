"""Model specs: the one way every command names a model.

    torchvision:NAME            a torchvision classification model, random init
    edgeprune:NAME              the built-in zoo (CIFAR-style resnet20/resnet56)
    package.module:function     a user factory returning an nn.Module

Keyword arguments may follow in brackets: ``torchvision:resnet18(num_classes=10)``.
Weights come separately (``--weights PATH``, a state_dict loaded with weights_only=True).
"""

from __future__ import annotations

import ast
import importlib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgeprune.errors import SpecError

if TYPE_CHECKING:
    from torch import nn

_SPEC_RE = re.compile(r"^(?P<source>[\w.]+):(?P<name>\w+)(?:\((?P<kwargs>.*)\))?$")


@dataclass(frozen=True)
class ModelSpec:
    """A parsed model spec. ``text`` is what the user typed and what artifacts record."""

    source: str  # "torchvision", "edgeprune" or a module path
    name: str
    kwargs: dict[str, Any] = field(default_factory=dict)

    @property
    def text(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.kwargs.items())
        return f"{self.source}:{self.name}" + (f"({args})" if args else "")


def parse_spec(text: str) -> ModelSpec:
    """Parse ``source:name[(k=v, ...)]``; raise SpecError saying what forms are allowed."""
    m = _SPEC_RE.match(text.strip())
    if not m:
        raise SpecError(
            f"model spec {text!r} is not understood; use torchvision:NAME, edgeprune:NAME or "
            "package.module:function, optionally with keyword arguments, e.g. "
            "'torchvision:resnet18(num_classes=10)'"
        )
    kwargs: dict[str, Any] = {}
    if m.group("kwargs"):
        try:
            call = ast.parse(f"f({m.group('kwargs')})", mode="eval").body
            assert isinstance(call, ast.Call) and not call.args
            kwargs = {kw.arg: ast.literal_eval(kw.value) for kw in call.keywords}
        except (SyntaxError, ValueError, AssertionError):
            raise SpecError(
                f"model spec {text!r}: arguments must be keyword literals, e.g. (num_classes=10)"
            ) from None
    return ModelSpec(m.group("source"), m.group("name"), kwargs)


def parse_input_shape(text: str | None) -> tuple[int, ...] | None:
    """'1x3x224x224' -> (1, 3, 224, 224)."""
    if text is None:
        return None
    try:
        shape = tuple(int(p) for p in text.lower().split("x"))
    except ValueError:
        shape = ()
    if len(shape) < 2 or any(d <= 0 for d in shape):
        raise SpecError(f"--input-shape {text!r} must look like 1x3x224x224 (positive integers)")
    return shape


def build_model(
    spec: str | ModelSpec,
    input_shape: tuple[int, ...] | None = None,
    weights: str | Path | None = None,
) -> tuple[nn.Module, tuple[int, ...]]:
    """Instantiate a model from its spec; return it (eval mode) and its input shape."""
    spec = parse_spec(spec) if isinstance(spec, str) else spec
    builder = {"torchvision": _torchvision, "edgeprune": _zoo}.get(spec.source, _user_factory)
    model, default_shape = builder(spec, input_shape)
    shape = input_shape or default_shape
    if shape is None:
        raise SpecError(
            f"model {spec.text}: no default input shape; pass --input-shape, e.g. 1x3x224x224 "
            "(or give the factory an `input_shape` attribute)"
        )
    if weights is not None:
        load_weights(model, weights, spec.text)
    return model.eval(), tuple(shape)


def _torchvision(spec: ModelSpec, input_shape):
    import torchvision

    names = torchvision.models.list_models(module=torchvision.models)
    if spec.name not in names:
        close = [n for n in names if spec.name[:4] in n][:8]
        raise SpecError(
            f"unknown torchvision model {spec.name!r}"
            + (f"; did you mean one of {close}?" if close else "; see torchvision.models.list_models()")
        )
    try:
        model = torchvision.models.get_model(spec.name, weights=None, **spec.kwargs)
    except TypeError as err:
        raise SpecError(f"model {spec.text}: {err}") from None
    size = 299 if spec.name == "inception_v3" else 224
    return model, (1, 3, size, size)


def _zoo(spec: ModelSpec, input_shape):
    from edgeprune.models.zoo import ZOO

    if spec.name not in ZOO:
        raise SpecError(f"unknown edgeprune model {spec.name!r}; available: {sorted(ZOO)}")
    entry = ZOO[spec.name]
    shape = input_shape or entry.input_shape
    kwargs = {"in_channels": shape[1], "num_classes": entry.num_classes, **spec.kwargs}
    try:
        return entry.factory(**kwargs), entry.input_shape
    except TypeError as err:
        raise SpecError(f"model {spec.text}: {err}") from None


def _kwargs_text(kwargs: dict) -> str:
    return ", ".join(f"{k}={v!r}" for k, v in kwargs.items())


def _user_factory(spec: ModelSpec, input_shape):
    from torch import nn

    try:
        module = importlib.import_module(spec.source)
    except ImportError as err:
        raise SpecError(f"model {spec.text}: cannot import module {spec.source!r} ({err})") from None
    factory = getattr(module, spec.name, None)
    if not callable(factory):
        raise SpecError(f"model {spec.text}: module {spec.source!r} has no callable {spec.name!r}")
    try:
        model = factory(**spec.kwargs)
    except Exception as err:  # noqa: BLE001 - the user's code: name it, and what it raised
        raise SpecError(f"model {spec.text}: {spec.source}.{spec.name}({_kwargs_text(spec.kwargs)}) raised "
                        f"{type(err).__name__}: {err}") from None
    if not isinstance(model, nn.Module):
        raise SpecError(f"model {spec.text}: factory returned {type(model).__name__}, not nn.Module")
    shape = getattr(factory, "input_shape", None) or getattr(model, "input_shape", None)
    return model, (tuple(shape) if shape else None)


def load_weights(model, path: str | Path, spec_text: str = "model") -> None:
    """Load a state_dict (weights_only=True) into ``model``; name mismatches in the error."""
    from edgeprune.files.weights import load_torch_file

    path = Path(path)
    state = load_torch_file(path, SpecError)  # missing, damaged (CRC), unreadable or NaN/inf: named
    if isinstance(state, dict) and "model" in state and isinstance(state["model"], dict):
        state = state["model"]  # a training checkpoint
    if not isinstance(state, dict):
        raise SpecError(f"weights file {str(path)!r} holds a {type(state).__name__}, not a state_dict")
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    wrong = [k for k in own if k in state and tuple(own[k].shape) != tuple(state[k].shape)]
    if missing or unexpected or wrong:
        parts = []
        if missing:
            parts.append(f"missing {len(missing)} keys (e.g. {missing[:3]})")
        if unexpected:
            parts.append(f"unexpected {len(unexpected)} keys (e.g. {unexpected[:3]})")
        if wrong:
            k = wrong[0]
            parts.append(
                f"{len(wrong)} shape mismatches (e.g. {k}: file {tuple(state[k].shape)}, "
                f"model {tuple(own[k].shape)})"
            )
        raise SpecError(
            f"weights {str(path)!r} do not fit {spec_text}: " + "; ".join(parts)
            + ". Were they saved from another model (or from a pruned one: load its folder instead)?"
        )
    model.load_state_dict(state)


def model_name_of_spec(spec: str) -> str:
    """'torchvision:resnet18(num_classes=10)' -> 'resnet18'; 'pkg.mod:make_net' -> 'make_net'."""
    name = spec.split(":", 1)[-1].split("(", 1)[0].strip()
    return re.sub(r"[^A-Za-z0-9_.-]", "_", name) or "model"
