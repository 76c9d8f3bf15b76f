"""The Runner protocol every inference backend implements, plus the pieces they share:
input specs, input-shape resolution, the runtime registry and the install hints.

Nothing here imports a runtime; backends import theirs inside their constructors, so
``edgeprune.runtime`` imports on a board that has only onnxruntime or only openvino.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Protocol, Sequence, runtime_checkable

import numpy as np

from edgeprune.errors import EdgepruneError, MissingDependencyError, SpecError

Dim = int | str | None  # a concrete size, or a symbolic / unknown (dynamic) dimension
Feeds = dict[str, np.ndarray]


class RunnerError(EdgepruneError):
    """An unknown runtime, an unavailable device, or runtime settings that cannot be used."""


@dataclass(frozen=True)
class InputSpec:
    """One model input: its name, shape and numpy dtype.

    ``shape`` holds ints for concrete sizes; after `resolve_input_shapes` every entry is an int.
    """

    name: str
    shape: tuple[Dim, ...]
    dtype: np.dtype

    @property
    def is_static(self) -> bool:
        return all(isinstance(d, int) and d >= 0 for d in self.shape)


@dataclass(frozen=True)
class LayerSample:
    """Raw per-node time reported by a runtime's profiler, summed over ``runs`` runs."""

    node: str  # runtime's node name (may be a fused or inserted node)
    op: str  # runtime's op / layer type
    total_us: float  # summed over all measured runs
    runs: int  # number of measured runs the total covers
    exec_type: str = ""  # kernel / implementation used, where the runtime says


@runtime_checkable
class Runner(Protocol):
    """A compiled model that can be fed numpy arrays. Implemented once per runtime."""

    runtime: str  # registry name: "ort", "openvino", "torch"

    @property
    def inputs(self) -> list[InputSpec]:
        """Inputs with the concrete shapes this runner was opened for."""
        ...

    @property
    def output_names(self) -> list[str]: ...

    def run(self, feeds: Feeds) -> list[np.ndarray]:
        """Run one inference; outputs in model order."""
        ...

    def describe(self) -> dict[str, Any]:
        """What actually runs: runtime, runtime_version, device, threads, precision, settings."""
        ...

    def close(self) -> None: ...


@runtime_checkable
class LayerProfiler(Protocol):
    """A runner that can report per-node times from its runtime's own profiler."""

    def profile_layers(self, pool: Sequence[Feeds], runs: int, warmup: int) -> list[LayerSample]:
        """Run ``warmup`` then ``runs`` inferences on a separate profiling-enabled instance."""
        ...


# ---------------------------------------------------------------------------------------
# Registry


@dataclass(frozen=True)
class RuntimeEntry:
    """How to open one runtime: its settings dataclass and the runner class."""

    name: str
    settings_cls: type
    opener: Callable[..., Runner]
    package: str  # the importable module the runtime needs
    extra: str  # pip extra that installs it
    aliases: tuple[str, ...] = ()


_RUNTIMES: dict[str, RuntimeEntry] = {}
_ALIASES: dict[str, str] = {}


def register_runtime(
    name: str, *, settings: type, package: str, extra: str, aliases: tuple[str, ...] = ()
) -> Callable[[type], type]:
    """Class decorator: register a runner class under ``name`` (and ``aliases``)."""

    def wrap(cls: type) -> type:
        _RUNTIMES[name] = RuntimeEntry(name, settings, cls, package, extra, aliases)
        for alias in (name, *aliases):
            _ALIASES[alias] = name
        return cls

    return wrap


def available_runtimes() -> list[str]:
    """Registered runtime names (installed or not)."""
    return sorted(_RUNTIMES)


def runtime_entry(name: str) -> RuntimeEntry:
    """The registry entry for ``name`` or an alias of it; RunnerError listing the known ones."""
    key = _ALIASES.get(name)
    if key is None:
        raise RunnerError(f"unknown runtime {name!r}; known: {', '.join(available_runtimes())}")
    return _RUNTIMES[key]


def make_settings(runtime: str, values: Mapping[str, Any], where: str = "settings") -> Any:
    """Build ``runtime``'s frozen settings dataclass from ``values``, rejecting unknown keys.

    ``where`` prefixes error messages (e.g. ``targets/x.toml: runtime``).
    """
    cls = runtime_entry(runtime).settings_cls
    fields = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - fields)
    if unknown:
        raise RunnerError(
            f"{where}.{unknown[0]}: unknown setting for runtime {runtime!r}; "
            f"allowed: {', '.join(sorted(fields))}"
        )
    settings = cls(**values)
    validate = getattr(settings, "validate", None)
    if validate is not None:
        validate(where)
    return settings


def settings_dict(settings: Any) -> dict[str, Any]:
    """A settings dataclass as a plain dict (for JSON and TOML)."""
    return dataclasses.asdict(settings)


def require(package: str, extra: str) -> Any:
    """Import ``package`` or raise MissingDependencyError with the pip command that installs it."""
    import importlib

    if package.split(".")[0] == "openvino":  # its telemetry off before it is imported (a library caller's too)
        from edgeprune.runtime.telemetry import disable

        disable()
    try:
        return importlib.import_module(package)
    except ImportError as err:
        raise MissingDependencyError(
            f"{package} is not installed ({err}); install it with: pip install 'edgeprune[{extra}]'"
        ) from None


def check_model_file(path: str | os.PathLike) -> Path:
    """Return ``path`` as a Path, or SpecError when it does not exist / is not a file."""
    p = Path(path)
    if not p.exists():
        raise SpecError(f"model file not found: {p}")
    if not p.is_file():
        raise SpecError(f"model path is not a file: {p}")
    return p


def check_ir_weights(path: str | os.PathLike) -> None:
    """An OpenVINO IR ``NAME.xml`` needs its ``NAME.bin`` beside it: SpecError naming both."""
    p = Path(path)
    if p.suffix.lower() != ".xml":
        return
    weights = p.with_suffix(".bin")
    if not weights.is_file():
        raise SpecError(f"{p}: OpenVINO IR without its weights: {weights} does not exist (an IR is "
                        f"{p.name} + {weights.name}, side by side; copy both)")


def check_deployed_file(path: str | os.PathLike) -> Path:
    """A model file a command is given, checked before any work: it exists; an OpenVINO
    ``.xml`` has its ``.bin``; an ``.onnx`` parses (a truncated or damaged file is named,
    when the ``onnx`` package is there to read it). Other suffixes are left to the runtime.

    Raises:
        SpecError: naming the file and what is wrong with it.
    """
    p = check_model_file(path)
    suffix = p.suffix.lower()
    if suffix == ".xml":
        check_ir_weights(p)
    elif suffix == ".onnx":
        try:
            import onnx
        except ImportError:
            return p
        try:
            model = onnx.load(str(p), load_external_data=False)
        except Exception as err:  # noqa: BLE001 - DecodeError and friends: a damaged file
            raise SpecError(f"{p}: not a readable ONNX model ({type(err).__name__}: {err}); is the file "
                            "truncated or damaged? Export it again") from None
        if not model.graph.node or not model.graph.input:  # an empty file parses as an empty model
            raise SpecError(f"{p}: not an ONNX model (no graph{' inputs' if model.graph.node else ''}; "
                            f"{p.stat().st_size} bytes); is the file truncated or empty? Export it again")
    return p


# ---------------------------------------------------------------------------------------
# Input shapes


def format_shape(shape: Sequence[Dim]) -> str:
    return "[" + ", ".join("?" if d is None else str(d) for d in shape) + "]"


def _is_fixed(d: Dim) -> bool:
    return isinstance(d, int) and d >= 0


def resolve_input_shapes(
    inputs: Sequence[InputSpec],
    batch: int | None = None,
    shapes: Mapping[str, Sequence[int]] | None = None,
) -> list[InputSpec]:
    """Give every input a concrete shape, or explain why that is impossible.

    Rules: an explicit ``shapes[name]`` must have the model's rank and agree with every
    fixed dimension; ``batch`` fills a dynamic first dimension and must equal a fixed one;
    a dynamic first dimension with no batch given becomes 1; any other dynamic dimension
    needs an explicit shape.

    Raises:
        SpecError: naming the input, the model's shape and the requested shape.
    """
    shapes = dict(shapes or {})
    names = [i.name for i in inputs]
    for name in shapes:
        if name not in names:
            raise SpecError(f"--shape names input {name!r}, but the model's inputs are: {', '.join(names)}")
    if batch is not None and batch < 1:
        raise SpecError(f"batch must be a positive integer, got {batch}")
    resolved = []
    for spec in inputs:
        model = spec.shape
        if spec.name in shapes:
            want = tuple(int(d) for d in shapes[spec.name])
            if len(want) != len(model) or any(_is_fixed(m) and m != w for m, w in zip(model, want)):
                raise SpecError(
                    f"input {spec.name!r}: the model expects shape {format_shape(model)}, "
                    f"got {format_shape(want)}"
                )
            if batch is not None and want and want[0] != batch:
                raise SpecError(
                    f"input {spec.name!r}: --shape {format_shape(want)} disagrees with batch {batch}"
                )
            if any(w < 1 for w in want):
                raise SpecError(f"input {spec.name!r}: shape {format_shape(want)} has a non-positive size")
        else:
            want_list: list[int] = []
            for axis, d in enumerate(model):
                if axis == 0 and batch is not None:
                    if _is_fixed(d) and d != batch:
                        asked = format_shape((batch, *model[1:]))
                        raise SpecError(
                            f"input {spec.name!r}: the model has a fixed batch of {d} "
                            f"(shape {format_shape(model)}); batch {batch} asks for {asked}"
                        )
                    want_list.append(batch)
                elif _is_fixed(d):
                    want_list.append(int(d))  # type: ignore[arg-type]
                elif axis == 0:
                    want_list.append(1)
                else:
                    raise SpecError(
                        f"input {spec.name!r} has dynamic dimension {axis} in {format_shape(model)}; "
                        f"give its shape, e.g. --shape {spec.name}="
                        + "x".join(str(x) if _is_fixed(x) else "N" for x in model)
                    )
            want = tuple(want_list)
        resolved.append(InputSpec(spec.name, want, spec.dtype))
    return resolved


def parse_shape_option(text: str) -> tuple[str, tuple[int, ...]]:
    """Parse ``NAME=1x3x224x224`` (as given to ``--shape``)."""
    name, sep, dims = text.rpartition("=")
    try:
        if not sep or not name:
            raise ValueError
        shape = tuple(int(d) for d in dims.lower().split("x"))
    except ValueError:
        raise SpecError(f"--shape expects NAME=D1xD2x..., e.g. input=1x3x224x224; got {text!r}") from None
    return name, shape


# ---------------------------------------------------------------------------------------
# Settings validation, shared by the backends' settings dataclasses


def check_positive_int(where: str, key: str, value: Any, *, optional: bool = False) -> None:
    """RunnerError unless ``value`` is an int >= 1 (or None when ``optional``)."""
    if value is None and optional:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise RunnerError(f"{where}.{key} must be a positive integer, got {value!r}")


def check_choice(where: str, key: str, value: Any, choices: Sequence[str]) -> None:
    """RunnerError unless ``value`` is one of ``choices``."""
    if value not in choices:
        raise RunnerError(f"{where}.{key} must be one of {', '.join(choices)}; got {value!r}")


def check_str(where: str, key: str, value: Any) -> None:
    if not isinstance(value, str) or not value:
        raise RunnerError(f"{where}.{key} must be a non-empty string, got {value!r}")


def usable_cpus() -> int:
    """CPUs this process may run on (affinity-aware where the OS says)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1
