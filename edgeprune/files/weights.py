"""Integrity of torch weight files (``model.pt``, ``checkpoint.pt``) before and after loading.

    state = load_torch_file(path)           # zip CRCs checked, weights_only=True, finite values

A file written by ``torch.save`` is a zip archive whose records carry a CRC-32; `check_zip`
reads every record and refuses a damaged one (a flipped bit, a file cut short) before torch
unpickles anything. `check_finite` refuses NaN or infinite values in floating-point tensors,
naming the tensor, so that a diverged run is not exported or resumed silently.
"""

from __future__ import annotations

import os
import zipfile
from pathlib import Path
from typing import Any, Callable, Iterator

from edgeprune.errors import SpecError

ZIP_MAGIC = b"PK\x03\x04"

ErrorType = Callable[[str], Exception]


def check_zip(path: str | os.PathLike, error: ErrorType = SpecError) -> None:
    """Raise ``error`` naming ``path`` when it is a damaged zip archive (bad CRC, truncated
    records, no central directory). A file in torch's legacy (non-zip) format passes: torch
    reads it itself."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            head = f.read(4)
    except OSError as err:
        raise error(f"{path}: cannot be read ({err.strerror or err})") from None
    if head != ZIP_MAGIC:
        return
    try:
        with zipfile.ZipFile(path) as archive:
            bad = archive.testzip()
    except zipfile.BadZipFile as err:
        raise error(f"{path}: damaged file: not a complete zip archive ({err}); was it cut short "
                    "while being copied? Write it again") from None
    except Exception as err:  # noqa: BLE001 - OSError, EOFError, zlib.error...: still a damaged file
        raise error(f"{path}: damaged file: a zip record cannot be read ({type(err).__name__}: {err}); "
                    "write it again") from None
    if bad is not None:
        raise error(f"{path}: damaged file: record {bad!r} fails its CRC check (the file changed after "
                    "it was written); write it again")


def _tensors(obj: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    """(dotted name, tensor) for every tensor in nested dicts / lists / tuples."""
    import torch

    if isinstance(obj, torch.Tensor):
        yield prefix or "<tensor>", obj
    elif isinstance(obj, dict):
        for key, value in obj.items():
            yield from _tensors(value, f"{prefix}.{key}" if prefix else str(key))
    elif isinstance(obj, (list, tuple)):
        for i, value in enumerate(obj):
            yield from _tensors(value, f"{prefix}[{i}]" if prefix else f"[{i}]")


def non_finite(obj: Any) -> list[tuple[str, int, int]]:
    """(name, NaN count, infinite count) of every floating-point tensor holding either."""
    import torch

    found = []
    for name, tensor in _tensors(obj):
        if not (tensor.is_floating_point() or tensor.is_complex()) or tensor.numel() == 0:
            continue
        t = tensor.detach()
        nan = int(torch.isnan(t).sum())
        inf = int(torch.isinf(t).sum())
        if nan or inf:
            found.append((name, nan, inf))
    return found


def check_finite(obj: Any, path: str | os.PathLike, error: ErrorType = SpecError) -> None:
    """Raise ``error`` naming the first tensor (and how many in all) with NaN or infinite values."""
    bad = non_finite(obj)
    if not bad:
        return
    name, nan, inf = bad[0]
    counts = " and ".join(p for p in (f"{nan} NaN values" if nan else "", f"{inf} infinite values" if inf else "") if p)
    more = f" (and {len(bad) - 1} more tensors)" if len(bad) > 1 else ""
    raise error(f"{Path(path).name}: tensor {name!r} has {counts}{more}; {path} cannot be used "
                "(did the training diverge? lower the learning rate)")


def load_torch_file(path: str | os.PathLike, error: ErrorType = SpecError, *, what: str = "weights file") -> Any:
    """``torch.load(path, weights_only=True)`` on CPU after `check_zip`, then `check_finite`.

    Raises:
        ``error``: a missing, damaged or unreadable file, or one with NaN/inf values (named).
    """
    import torch

    path = Path(path)
    if not path.is_file():
        raise error(f"{what} {str(path)!r} does not exist")
    check_zip(path, error)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - any unpickling failure is a bad file
        raise error(f"{what} {str(path)!r} cannot be read ({type(err).__name__}: {err})") from None
    check_finite(state, path, error)
    return state


def check_weights_file(path: str | os.PathLike, error: ErrorType = SpecError, *, what: str = "weights file") -> None:
    """`load_torch_file` for its checks only (for callers that load the file themselves)."""
    load_torch_file(path, error, what=what)
