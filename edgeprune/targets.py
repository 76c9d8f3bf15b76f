"""Targets: one TOML file per device under ``targets/``, loaded into frozen dataclasses.

A target fixes everything that changes a latency number (runtime, device, threads,
precision, hint), the channel alignment that suits the device, profiling defaults, and the
latency budgets CI holds models to. Schema (every key but ``profile``/``budgets`` required;
unknown keys are errors, to catch typos)::

    name = "x86-ort-1t"              # must equal the file name
    description = "..."
    align = 16                       # kept channel widths are rounded to multiples of this

    [runtime]
    name = "ort"                     # ort | openvino | torch; the rest are that runtime's settings
    threads = 1

    [profile]                        # defaults for `edgeprune profile --target`
    runs = 200
    warmup = 20
    batch = 1

    [budgets]
    max_ratio = 0.9                  # candidate median / baseline median, same run
    [budgets.latency_ms]             # absolute budgets by model name (file stem, or folder of model.onnx; or --name)
    resnet18 = 30.0

    [quantize]                       # optional: what `edgeprune quantize --target NAME` needs to know
    reduce_range = true              # 7-bit weight codes: true where the device's int8 kernels saturate
                                     # (x86 without VNNI), false where they do not (VNNI, arm64);
                                     # left out: decided from the CPU that quantizes

A path (ending in ``.toml`` or containing a folder separator) is read as is. A bare NAME is
looked up as ``NAME.toml`` in, in order: ``./targets`` (the current folder), each folder in
``$EDGEPRUNE_TARGETS`` (os.pathsep-separated), then the built-in targets (`builtin_dir`: the
checkout's top-level ``targets/`` folder, or the copy a wheel installs under
``<prefix>/share/edgeprune/targets``). Calibration manifests are found the same way
(``./calibration``, ``$EDGEPRUNE_CALIBRATION``, built-ins; edgeprune.quant.calibration).
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from edgeprune.errors import EdgepruneError
from edgeprune.files.toml import load_toml
from edgeprune.profile.profiler import ProfileConfig
from edgeprune.runtime.base import (
    RunnerError,
    available_runtimes,
    make_settings,
    settings_dict,
)

# ---------------------------------------------------------------------------------------
# Where files are found (targets here; calibration manifests use the same functions)

ENV_VAR = "EDGEPRUNE_TARGETS"
_CHECKOUT = Path(__file__).resolve().parent.parent
DATA_PREFIX = ("share", "edgeprune")  # where the wheel installs targets/ and calibration/ (pyproject data-files)


@functools.cache
def builtin_dir(kind: str) -> Path:
    """The folder of edgeprune's built-in ``kind`` files (``"targets"`` or ``"calibration"``).

    In a checkout (editable install, or running from the source tree) it is the top-level
    folder of that name, the one source of truth. An installed wheel carries a copy under
    ``<prefix>/share/edgeprune/<kind>``, found through the distribution's file list (RECORD).
    The returned folder may not exist (neither found); lookups then skip it.
    """
    checkout = _CHECKOUT / kind
    if (_CHECKOUT / "pyproject.toml").is_file() and checkout.is_dir():
        return checkout
    want = (*DATA_PREFIX, kind)
    try:
        from importlib.metadata import PackageNotFoundError, files

        entries = files("edgeprune") or []
    except PackageNotFoundError:
        entries = []
    for entry in entries:
        parts = entry.parts
        if len(parts) > 3 and tuple(parts[-4:-1]) == want and entry.name.endswith(".toml"):
            return Path(entry.locate()).resolve().parent
    # `pip install --target DIR` moves the data folder next to the package
    for prefix in (_CHECKOUT, Path(sys.prefix)):
        candidate = prefix.joinpath(*want)
        if candidate.is_dir():
            return candidate
    return checkout


@dataclass(frozen=True)
class SearchDir:
    """One folder a bare name is looked up in, and why it is searched (for messages)."""

    path: Path
    origin: str  # "current folder" | "$VAR" | "built-in", joined with ", " when one folder is several


def search_dirs(kind: str, env_var: str) -> list[SearchDir]:
    """The folders a bare ``kind`` name is looked up in, in order: ``./<kind>``, each folder in
    ``$<env_var>`` (os.pathsep-separated), the built-in folder (`builtin_dir`). A folder that
    appears twice (``./targets`` in the checkout is the built-in one) is kept at its first place."""
    found = [SearchDir(Path.cwd() / kind, "current folder")]
    found += [SearchDir(Path(p), f"${env_var}") for p in os.environ.get(env_var, "").split(os.pathsep) if p]
    found.append(SearchDir(builtin_dir(kind), "built-in"))
    unique: dict[Path, SearchDir] = {}
    for d in found:
        key = d.path.resolve()
        if key in unique:
            unique[key] = SearchDir(unique[key].path, f"{unique[key].origin}, {d.origin}")
        else:
            unique[key] = d
    return list(unique.values())


def names_in(dirs: list[SearchDir]) -> list[str]:
    """Sorted stems of the ``*.toml`` files in ``dirs`` (a name in several is listed once)."""
    names: set[str] = set()
    for d in dirs:
        if d.path.is_dir():
            names.update(p.stem for p in d.path.glob("*.toml"))
    return sorted(names)


def find_in(dirs: list[SearchDir], name: str) -> Path | None:
    """The first ``<dir>/<name>.toml`` that is a file, or None."""
    for d in dirs:
        candidate = d.path / f"{name}.toml"
        if candidate.is_file():
            return candidate
    return None


def describe_search(dirs: list[SearchDir], env_var: str) -> str:
    """``searched targets (current folder), /x ($EDGEPRUNE_TARGETS), ... (built-in)`` for errors."""
    shown = ", ".join(f"{_display(d.path)} ({d.origin}{'' if d.path.is_dir() else ', missing'})" for d in dirs)
    unset = "" if os.environ.get(env_var) else f"; ${env_var} is not set"
    return f"searched {shown}{unset}"


def is_path(text: str) -> bool:
    """A .toml name or one with a folder separator is a path, read as is; anything else a bare name."""
    return text.endswith(".toml") or os.sep in text or bool(os.altsep and os.altsep in text)


BUILTIN_DIR = builtin_dir("targets")

_TOP_KEYS = ("name", "description", "align", "runtime", "profile", "budgets", "quantize")
_PROFILE_KEYS = ("runs", "warmup", "batch")
_BUDGET_KEYS = ("max_ratio", "latency_ms")
_QUANTIZE_KEYS = ("reduce_range",)


class TargetError(EdgepruneError):
    """An unknown target, or a target file that is malformed; the message names file and field."""


@dataclass(frozen=True)
class RuntimeConfig:
    """Which runtime and its (validated, frozen) settings dataclass."""

    name: str
    settings: Any


@dataclass(frozen=True)
class Budgets:
    """Latency budgets. ``latency_ms``: absolute, by model name. ``max_ratio``: relative to a
    baseline measured in the same run (candidate median / baseline median)."""

    latency_ms: Mapping[str, float] = field(default_factory=dict)
    max_ratio: float | None = None


@dataclass(frozen=True)
class QuantizeHints:
    """What quantizing for this device needs to know. ``reduce_range``: True where the
    device's int8 kernels saturate with 8-bit weights (x86 without VNNI), so weights use 7-bit
    codes; False where they do not (VNNI, AMX, arm64); None: not known, decided from the CPU
    that quantizes (edgeprune.quant.reduce_range)."""

    reduce_range: bool | None = None


@dataclass(frozen=True)
class Target:
    name: str
    description: str
    align: int
    runtime: RuntimeConfig
    profile: ProfileConfig = ProfileConfig()
    budgets: Budgets = Budgets()
    quantize: QuantizeHints = QuantizeHints()
    source: str | None = field(default=None, compare=False)  # file it was read from

    def to_dict(self) -> dict[str, Any]:
        """Plain data in the TOML file's shape (None values left out)."""
        runtime = {"name": self.runtime.name, **settings_dict(self.runtime.settings)}
        profile = dataclasses.asdict(self.profile)
        budgets: dict[str, Any] = {}
        if self.budgets.max_ratio is not None:
            budgets["max_ratio"] = self.budgets.max_ratio
        if self.budgets.latency_ms:
            budgets["latency_ms"] = dict(self.budgets.latency_ms)
        data: dict[str, Any] = {
            "name": self.name,
            "description": self.description,
            "align": self.align,
            "runtime": {k: v for k, v in runtime.items() if v is not None},
            "profile": {k: v for k, v in profile.items() if v is not None},
        }
        if budgets:
            data["budgets"] = budgets
        if self.quantize.reduce_range is not None:
            data["quantize"] = {"reduce_range": self.quantize.reduce_range}
        return data


# ---------------------------------------------------------------------------------------
# Parsing


def _display(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def _check_keys(where: str, table: Any, allowed: tuple[str, ...], prefix: str = "") -> None:
    if not isinstance(table, dict):
        raise TargetError(f"{where}: {prefix.rstrip('.') or 'file'} must be a table, got {table!r}")
    for key in table:
        if key not in allowed:
            raise TargetError(f"{where}: unknown key {prefix}{key}; allowed: {', '.join(allowed)}")


def _positive_number(where: str, key: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise TargetError(f"{where}: {key} must be a positive number, got {value!r}")
    return float(value)


def target_from_dict(data: Mapping[str, Any], where: str = "target") -> Target:
    """Validate plain data (as read from TOML) into a Target; TargetError names ``where`` and the field."""
    _check_keys(where, data, _TOP_KEYS)
    for key in ("name", "description", "align", "runtime"):
        if key not in data:
            raise TargetError(f"{where}: missing required key {key}")
    name, description, align = data["name"], data["description"], data["align"]
    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", name):
        raise TargetError(f"{where}: name must be letters, digits, '-', '_' or '.', got {name!r}")
    if not isinstance(description, str):
        raise TargetError(f"{where}: description must be a string, got {description!r}")
    if isinstance(align, bool) or not isinstance(align, int) or align < 1:
        raise TargetError(f"{where}: align must be a positive integer, got {align!r}")

    runtime_table = data["runtime"]
    if not isinstance(runtime_table, dict):
        raise TargetError(f"{where}: runtime must be a table, got {runtime_table!r}")
    values = dict(runtime_table)
    if "name" not in values:
        raise TargetError(f"{where}: missing required key runtime.name ({', '.join(available_runtimes())})")
    runtime_name = values.pop("name")
    if runtime_name not in available_runtimes():
        raise TargetError(
            f"{where}: runtime.name must be one of {', '.join(available_runtimes())}, got {runtime_name!r}"
        )
    try:
        settings = make_settings(runtime_name, values, where=f"{where}: runtime")
    except RunnerError as err:
        raise TargetError(str(err)) from None
    except TypeError as err:
        raise TargetError(f"{where}: runtime: {err}") from None

    profile_table = data.get("profile", {})
    _check_keys(where, profile_table, _PROFILE_KEYS, "profile.")
    profile = ProfileConfig(**profile_table)
    try:
        profile.validate(f"{where}: profile")
    except RunnerError as err:
        raise TargetError(str(err)) from None

    budgets_table = data.get("budgets", {})
    _check_keys(where, budgets_table, _BUDGET_KEYS, "budgets.")
    max_ratio = budgets_table.get("max_ratio")
    if max_ratio is not None:
        max_ratio = _positive_number(where, "budgets.max_ratio", max_ratio)
    latency = budgets_table.get("latency_ms", {})
    if not isinstance(latency, dict):
        raise TargetError(f"{where}: budgets.latency_ms must be a table of model name = ms, got {latency!r}")
    latency_ms = {str(k): _positive_number(where, f"budgets.latency_ms.{k}", v) for k, v in latency.items()}

    quantize_table = data.get("quantize", {})
    _check_keys(where, quantize_table, _QUANTIZE_KEYS, "quantize.")
    reduce_range = quantize_table.get("reduce_range")
    if reduce_range is not None and not isinstance(reduce_range, bool):
        raise TargetError(
            f"{where}: quantize.reduce_range must be true (the device's int8 kernels saturate with 8-bit "
            f"weights: x86 without VNNI) or false (VNNI, AMX, arm64), got {reduce_range!r}; leave it out to "
            "decide from the CPU that quantizes"
        )
    return Target(
        name=name,
        description=description,
        align=align,
        runtime=RuntimeConfig(runtime_name, settings),
        profile=profile,
        budgets=Budgets(latency_ms=latency_ms, max_ratio=max_ratio),
        quantize=QuantizeHints(reduce_range=reduce_range),
        source=where,
    )


def read_target_file(path: str | os.PathLike) -> Target:
    """Parse and validate one target TOML file; its ``name`` must equal the file name."""
    path = Path(path)
    where = _display(path)
    data, _ = load_toml(path, "target file", TargetError, where)
    target = target_from_dict(data, where)
    if target.name != path.stem:
        raise TargetError(f"{where}: name {target.name!r} must match the file name {path.stem!r}")
    return target


def target_dirs() -> list[Path]:
    """Folders searched for ``<name>.toml``, in order: ``./targets``, ``$EDGEPRUNE_TARGETS``, built-ins."""
    return [d.path for d in search_dirs("targets", ENV_VAR)]


def list_targets() -> list[str]:
    """Names of the targets found in all `target_dirs` (a name in several is listed once;
    `load_target` takes the first)."""
    return names_in(search_dirs("targets", ENV_VAR))


def find_target(name: str) -> Path:
    """The file a bare target name resolves to (first of `target_dirs`).

    Raises:
        TargetError: not found; the message lists the available names and the folders searched.
    """
    dirs = search_dirs("targets", ENV_VAR)
    found = find_in(dirs, name)
    if found is None:
        raise TargetError(
            f"unknown target {name!r}; available: {', '.join(names_in(dirs)) or 'none'} "
            f"({describe_search(dirs, ENV_VAR)}; a path to a .toml file is read as is)"
        )
    return found


def load_target(name_or_path: str | os.PathLike) -> Target:
    """Load a target by name (looked up in `target_dirs`) or by path to a ``.toml`` file.

    Raises:
        TargetError: unknown name (the message lists the available ones and the folders
            searched), or a malformed file (the message names the file and the field).
    """
    text = str(name_or_path)
    if is_path(text):
        return read_target_file(text)
    return read_target_file(find_target(text))


# ---------------------------------------------------------------------------------------
# Writing (enough TOML for target files: strings, numbers, booleans, nested tables)

_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")


def _toml_key(key: str) -> str:
    return key if _BARE_KEY.fullmatch(key) else json.dumps(key)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # JSON string escapes are valid TOML basic-string escapes
    raise TypeError(f"cannot write {value!r} to TOML")


def dump_toml(data: Mapping[str, Any]) -> str:
    """Serialize nested dicts of scalars as TOML (tables after the keys they sit beside)."""
    lines: list[str] = []

    def emit(table: Mapping[str, Any], path: list[str]) -> None:
        scalars = [(k, v) for k, v in table.items() if not isinstance(v, Mapping)]
        tables = [(k, v) for k, v in table.items() if isinstance(v, Mapping)]
        if path and (scalars or not tables):
            lines.append(f"\n[{'.'.join(_toml_key(p) for p in path)}]")
        lines.extend(f"{_toml_key(k)} = {_toml_value(v)}" for k, v in scalars)
        for k, v in tables:
            emit(v, [*path, k])

    emit(data, [])
    return "\n".join(lines).lstrip("\n") + "\n"


def dump_target(target: Target) -> str:
    """The target as TOML text that `read_target_file` reads back to an equal Target."""
    return dump_toml(target.to_dict())
