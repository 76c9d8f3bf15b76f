"""The one artifact format: every folder that train / prune / export / quantize writes carries
``manifest.json``, written last, that says what the folder is and what each file must be.

    {
      "schema": "edgeprune.manifest/1",
      "kind": "prune",                       # train | prune | export | quantize
      "spec": "edgeprune:resnet20",
      "input_shape": [1, 1, 28, 28],         # export/quantize: "batch" for a dynamic batch
      "preprocess": {"mean": [0.286], "std": [0.353], "scale": "pixels in [0,1]",
                     "pixels": "x = (uint8 / 255 - mean[c]) / std[c]", "source": "fashion-mnist"},
      "classes": ["T-shirt/top", ...],       # or null when no data set was involved
      "settings": {...},                     # what made it (the prune request, export options, ...)
      "files": {"model.pt": {"bytes": 1234, "sha256": "..."}, ...},
      "edgeprune_version": "0.1.0"
    }

Writers remove the old manifest before they touch a folder (`clear_manifest`) and write the new
one after every other file (`write_manifest`), so a crash in between leaves no manifest.
Readers call `read_manifest`: a folder without one, or whose files do not match it (a crash
between two writes, a file replaced by hand, two runs mixed), is refused with an error that
names the file. Torch-free: the runtime-only install verifies folders too.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from edgeprune import __version__
from edgeprune.errors import EdgepruneError
from edgeprune.files.atomic import write_json
from edgeprune.files.hashing import sha256_file

MANIFEST = "manifest.json"
SCHEMA = "edgeprune.manifest/1"
KINDS = ("train", "prune", "export", "quantize")
# The report file each kind writes: a folder holding one of these without a manifest is a run
# that did not finish (or an edgeprune before manifests).
REPORT_FILES = {"train": "metrics.json", "prune": "plan.json", "export": "export.json", "quantize": "quantize.json"}
PIXELS = "x = (uint8 / 255 - mean[c]) / std[c]"
SCALE = "pixels in [0,1]"


class ArtifactError(EdgepruneError):
    """An artifact folder that is incomplete, or whose files do not match its manifest."""


def preprocess_record(mean: Sequence[float], std: Sequence[float], source: str) -> dict[str, Any]:
    """The manifest's ``preprocess``: per-channel mean/std on pixels scaled to [0, 1]."""
    return {"mean": [float(v) for v in mean], "std": [float(v) for v in std], "scale": SCALE,
            "pixels": PIXELS, "source": source}


@dataclass(frozen=True)
class Manifest:
    """A verified manifest (what `read_manifest` returns)."""

    folder: Path
    kind: str
    spec: str | None
    input_shape: list[Any]
    preprocess: dict[str, Any] | None
    classes: list[str] | None
    settings: dict[str, Any] = field(default_factory=dict)
    files: dict[str, dict[str, Any]] = field(default_factory=dict)
    edgeprune_version: str = __version__

    def to_json(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA, "kind": self.kind, "spec": self.spec, "input_shape": list(self.input_shape),
            "preprocess": self.preprocess, "classes": self.classes, "settings": self.settings,
            "files": self.files, "edgeprune_version": self.edgeprune_version,
        }

    @property
    def mean_std(self) -> tuple[tuple[float, ...], tuple[float, ...]] | None:
        if not self.preprocess:
            return None
        return tuple(self.preprocess["mean"]), tuple(self.preprocess["std"])


def clear_manifest(folder: str | os.PathLike) -> None:
    """Remove ``folder``'s manifest before its files are rewritten (a crash then leaves a folder
    that readers refuse as incomplete, never one that claims to be complete)."""
    path = Path(folder) / MANIFEST
    if path.is_file():
        path.unlink()


def write_manifest(
    folder: str | os.PathLike,
    kind: str,
    files: Sequence[str],
    *,
    spec: str | None,
    input_shape: Sequence[Any],
    preprocess: dict[str, Any] | None,
    classes: Sequence[str] | None,
    settings: dict[str, Any],
) -> Manifest:
    """Hash ``files`` (names inside ``folder``) and write ``folder/manifest.json`` atomically."""
    if kind not in KINDS:
        raise ValueError(f"unknown artifact kind {kind!r}")
    folder = Path(folder)
    entries = {}
    for name in files:
        path = folder / name
        entries[name] = {"bytes": path.stat().st_size, "sha256": sha256_file(path)}
    manifest = Manifest(folder, kind, spec, list(input_shape), preprocess,
                        list(classes) if classes is not None else None, dict(settings), entries)
    write_json(folder / MANIFEST, manifest.to_json())
    return manifest


def read_manifest(folder: str | os.PathLike, kinds: Sequence[str] | None = None) -> Manifest:
    """The folder's manifest, after checking that every file it lists is there and unchanged.

    Raises:
        ArtifactError: no folder, no manifest (an unfinished run), a malformed manifest (names the
            field), another kind than ``kinds``, or a file that is missing or differs (names it).
    """
    folder = Path(folder)
    what = " or ".join(f"`edgeprune {k}`" for k in (kinds or KINDS))
    if not folder.is_dir():
        raise ArtifactError(f"{str(folder)!r} is not a folder written by {what}")
    path = folder / MANIFEST
    if not path.is_file():
        found = [n for n in REPORT_FILES.values() if (folder / n).is_file()]
        why = (f"it holds {', '.join(found)} but no {MANIFEST}: the run that wrote it did not finish "
               "(or an edgeprune from before manifests wrote it); run that command again") if found else (
               f"no {MANIFEST} in it")
        raise ArtifactError(f"{folder}: not a complete folder written by {what}: {why}")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise ArtifactError(f"{path}: not readable JSON ({err})") from None
    manifest = _parse(data, folder, path)
    if kinds is not None and manifest.kind not in kinds:
        raise ArtifactError(f"{folder}: written by `edgeprune {manifest.kind}`, but this needs a folder written by {what}")
    for name, entry in manifest.files.items():
        _verify_file(folder, name, entry)
    return manifest


def manifest_of_file(path: str | os.PathLike, kinds: Sequence[str] | None = None) -> Manifest | None:
    """For a reader given one file (``model.onnx``, ``model.xml``): the verified manifest of the
    folder it lies in, when that folder is an edgeprune artifact; None for a file of the user's
    own. The file itself must be listed (a stray file in an artifact folder is refused)."""
    path = Path(path)
    folder = path.parent
    reports = [REPORT_FILES[k] for k in (kinds or KINDS)]
    if not (folder / MANIFEST).is_file() and not any((folder / n).is_file() for n in reports):
        return None
    manifest = read_manifest(folder, kinds)
    if path.name not in manifest.files:
        raise ArtifactError(f"{path}: not one of the files {folder / MANIFEST} lists ({', '.join(manifest.files)})")
    return manifest


def _parse(data: Any, folder: Path, path: Path) -> Manifest:
    if not isinstance(data, dict):
        raise ArtifactError(f"{path}: must be a JSON object")
    if data.get("schema") != SCHEMA:
        raise ArtifactError(f"{path}: 'schema' must be {SCHEMA!r}, got {data.get('schema')!r}")
    if data.get("kind") not in KINDS:
        raise ArtifactError(f"{path}: 'kind' must be one of {', '.join(KINDS)}, got {data.get('kind')!r}")
    files = data.get("files")
    if not isinstance(files, dict) or not all(
        isinstance(e, dict) and isinstance(e.get("sha256"), str) and isinstance(e.get("bytes"), int)
        for e in files.values()
    ):
        raise ArtifactError(f"{path}: 'files' must map file names to {{\"bytes\": int, \"sha256\": str}}")
    for name in files:
        if Path(name).name != name:
            raise ArtifactError(f"{path}: 'files' may only name files in the folder itself, got {name!r}")
    pre = data.get("preprocess")
    if pre is not None and not (isinstance(pre, dict) and isinstance(pre.get("mean"), list)
                                and isinstance(pre.get("std"), list) and len(pre["mean"]) == len(pre["std"])):
        raise ArtifactError(f"{path}: 'preprocess' must be null or hold 'mean' and 'std' lists of one length")
    return Manifest(
        folder, data["kind"], data.get("spec"), list(data.get("input_shape") or []), pre, data.get("classes"),
        dict(data.get("settings") or {}), dict(files), str(data.get("edgeprune_version", "")),
    )


def _verify_file(folder: Path, name: str, entry: dict[str, Any]) -> None:
    path = folder / name
    rerun = "the folder mixes files of two runs or a file was changed after it was written; run the command that wrote it again"
    if not path.is_file():
        raise ArtifactError(f"{folder}: missing {name}, which its {MANIFEST} lists; {rerun}")
    size = path.stat().st_size
    if size != entry["bytes"]:
        raise ArtifactError(f"{path}: {size} bytes, but {folder / MANIFEST} says {entry['bytes']}; {rerun}")
    digest = sha256_file(path)
    if digest != entry["sha256"]:
        raise ArtifactError(
            f"{path}: sha256 {digest[:12]}... differs from {entry['sha256'][:12]}... in {folder / MANIFEST}; {rerun}"
        )
