"""Build artifacts in a temporary folder beside the destination; publish only when all checks passed.

    with Staging(out_dir) as stage:          # .<name>.export-XXXX/ inside out_dir's parent
        write files into stage.path ...
        stage.publish(["model.onnx", ..., "export.json"], marker="manifest.json")

A failure anywhere inside the block removes the temporary folder (and any parent folders it
had to create), so the destination gains nothing and keeps what it had. Publishing moves
files with ``os.replace`` (same filesystem, so each move is atomic): the old marker file
is removed first and the new one is moved last, so a crash midway leaves no marker claiming
a complete export. Files the previous marker listed that the new export does not produce
are removed, so the folder never mixes two exports.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from types import TracebackType
from typing import Sequence

from edgeprune.export.options import ExportError


class Staging:
    """A temporary folder in ``out_dir``'s parent, published into ``out_dir`` on success."""

    def __init__(self, out_dir: str | os.PathLike) -> None:
        self.out_dir = Path(out_dir).absolute()
        if self.out_dir.exists() and not self.out_dir.is_dir():
            raise ExportError(f"--out {str(out_dir)!r} exists and is not a folder")
        self._created: list[Path] = []  # parent folders this export created, deepest last
        self.path: Path | None = None
        self.published = False

    def __enter__(self) -> "Staging":
        missing = []
        parent = self.out_dir.parent
        while not parent.exists():
            missing.append(parent)
            parent = parent.parent
        for folder in reversed(missing):
            folder.mkdir()
            self._created.append(folder)
        self.path = Path(tempfile.mkdtemp(prefix=f".{self.out_dir.name}.export-", dir=self.out_dir.parent))
        return self

    def __exit__(self, exc_type: type | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        if self.path is not None:
            shutil.rmtree(self.path, ignore_errors=True)
        if exc_type is not None and not self.published:
            for folder in reversed(self._created):
                try:
                    folder.rmdir()  # only if still empty
                except OSError:
                    break

    def publish(self, names: Sequence[str], marker: str) -> list[Path]:
        """Move ``names`` then ``marker`` from the staging folder into ``out_dir``."""
        assert self.path is not None, "publish() inside the with block"
        out = self.out_dir
        out.mkdir(exist_ok=True)
        stale = _listed_files(out / marker)
        if (out / marker).exists():
            (out / marker).unlink()
        published = []
        for name in [*names, marker]:
            os.replace(self.path / name, out / name)
            published.append(out / name)
        for name in sorted(stale - set(names) - {marker}):
            old = out / name
            if old.is_file() and old.parent == out:
                old.unlink()
        self.published = True
        return published


def _listed_files(marker: Path) -> set[str]:
    """File names a previous run's marker lists (a manifest's ``files`` keys, or ``files[].path``);
    empty when unreadable."""
    try:
        files = json.loads(marker.read_text(encoding="utf-8")).get("files", [])
        if isinstance(files, dict):  # manifest.json: {name: {"bytes", "sha256"}}
            return {Path(name).name for name in files}
        return {Path(f["path"]).name for f in files if isinstance(f, dict) and "path" in f}
    except (OSError, ValueError, TypeError, AttributeError, KeyError):
        return set()
