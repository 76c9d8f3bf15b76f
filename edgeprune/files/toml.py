"""Reading TOML files (targets, pipeline configs, calibration manifests) with one error style."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any, Callable

from edgeprune.errors import EdgepruneError, MissingDependencyError


def _tomllib() -> Any:
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        try:
            import tomli as tomllib  # type: ignore[no-redef]
        except ModuleNotFoundError:
            raise MissingDependencyError("reading TOML on Python 3.10 needs tomli: pip install tomli") from None
    return tomllib


def load_toml(
    path: str | os.PathLike,
    what: str,
    error: Callable[[str], EdgepruneError] = EdgepruneError,
    where: str | None = None,
) -> tuple[dict[str, Any], str]:
    """(parsed table, sha256 of the file's bytes). ``what`` names the file's role in messages
    ("target file", "pipeline config"); ``error`` is the exception class raised, with a message
    naming ``where`` (default: the path)."""
    tomllib = _tomllib()
    path = Path(path)
    where = where or str(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise error(f"{what} not found: {where}") from None
    except OSError as err:
        raise error(f"{where}: cannot read the {what}: {err.strerror or err}") from None
    try:
        return tomllib.loads(raw.decode()), hashlib.sha256(raw).hexdigest()
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
        raise error(f"{where}: not valid TOML: {err}") from None
