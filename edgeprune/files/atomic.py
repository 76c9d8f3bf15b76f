"""Atomic artifact writes: write to a temporary file in the same folder, then rename."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any, Callable

from edgeprune.files.faults import publish_step


def atomic_write(path: str | os.PathLike, write: Callable[[str], None]) -> Path:
    """Call ``write(tmp_path)`` and move the result onto ``path`` only if it succeeded."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        publish_step(f"replace {path.name}")
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def save_torch(path: str | os.PathLike, obj: Any) -> Path:
    """``torch.save(obj)`` to ``path``, atomically and byte-reproducibly.

    Saved through a file object: given a path, torch names the records inside the zip after the
    file (here a random temporary name), so the same tensors would give different bytes and
    every artifact hash would change on each run."""

    def _write(tmp: str) -> None:
        import torch

        with open(tmp, "wb") as f:
            torch.save(obj, f)

    return atomic_write(path, _write)


def write_json(path: str | os.PathLike, data: Any) -> Path:
    """Write ``data`` as indented JSON, atomically."""

    def _write(tmp: str) -> None:
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(data, f, indent=2, sort_keys=False)
            f.write("\n")

    return atomic_write(path, _write)
