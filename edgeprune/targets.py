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

Search order for a bare name: each folder in ``$EDGEPRUNE_TARGETS`` (os.pathsep-separated),
then the ``targets/`` folder of the edgeprune checkout.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import re
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

BUILTIN_DIR = Path(__file__).resolve().parent.parent / "targets"

_TOP_KEYS = ("name", "description", "align", "runtime", "profile", "budgets")
_PROFILE_KEYS = ("runs", "warmup", "batch")
_BUDGET_KEYS = ("max_ratio", "latency_ms")


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
class Target:
    name: str
    description: str
    align: int
    runtime: RuntimeConfig
    profile: ProfileConfig = ProfileConfig()
    budgets: Budgets = Budgets()
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
    return Target(
        name=name,
        description=description,
        align=align,
        runtime=RuntimeConfig(runtime_name, settings),
        profile=profile,
        budgets=Budgets(latency_ms=latency_ms, max_ratio=max_ratio),
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
    """Folders searched for ``<name>.toml``, in order."""
    extra = [Path(p) for p in os.environ.get("EDGEPRUNE_TARGETS", "").split(os.pathsep) if p]
    return [*extra, BUILTIN_DIR]


def list_targets() -> list[str]:
    """Names of the targets found in `target_dirs` (first folder wins on a clash)."""
    names: set[str] = set()
    for d in target_dirs():
        if d.is_dir():
            names.update(p.stem for p in d.glob("*.toml"))
    return sorted(names)


def load_target(name_or_path: str | os.PathLike) -> Target:
    """Load a target by name (searched in `target_dirs`) or by path to a ``.toml`` file.

    Raises:
        TargetError: unknown name (the message lists the available ones), or a malformed
            file (the message names the file and the field).
    """
    text = str(name_or_path)
    if text.endswith(".toml") or os.sep in text or (os.altsep and os.altsep in text):
        return read_target_file(text)
    for d in target_dirs():
        candidate = d / f"{text}.toml"
        if candidate.is_file():
            return read_target_file(candidate)
    available = list_targets()
    dirs = ", ".join(_display(d) for d in target_dirs())
    raise TargetError(
        f"unknown target {text!r}; available: {', '.join(available) or 'none'} (searched {dirs})"
    )


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
