"""Inference runtimes behind one `Runner` protocol, opened by name with `open_runner`.

Importing this package imports no runtime and no torch: each backend imports its runtime
when a runner is constructed, and says which pip extra installs it when it is missing.
"""

from __future__ import annotations

import os
from typing import Any, Mapping, Sequence

# Importing the backend modules registers them (they import nothing heavy at module level).
from edgeprune.runtime import onnxruntime as _ort_backend  # noqa: F401
from edgeprune.runtime import openvino as _ov_backend  # noqa: F401
from edgeprune.runtime import torch as _torch_backend  # noqa: F401
from edgeprune.runtime.base import (
    Feeds,
    InputSpec,
    LayerProfiler,
    LayerSample,
    Runner,
    RunnerError,
    available_runtimes,
    make_settings,
    parse_shape_option,
    resolve_input_shapes,
    runtime_entry,
)

__all__ = [
    "Feeds",
    "InputSpec",
    "LayerProfiler",
    "LayerSample",
    "Runner",
    "RunnerError",
    "available_runtimes",
    "make_settings",
    "open_runner",
    "parse_shape_option",
    "resolve_input_shapes",
    "runtime_entry",
]


def open_runner(
    path: str | os.PathLike,
    runtime: str,
    *,
    batch: int | None = None,
    shapes: Mapping[str, Sequence[int]] | None = None,
    settings: Any = None,
    **values: Any,
) -> Runner:
    """Open ``path`` with the runtime registered as ``runtime`` ("ort", "openvino", "torch").

    Args:
        path: model file (.onnx; OpenVINO also reads .xml IR; torch reads .pt2).
        runtime: registry name or alias.
        batch: batch size for a dynamic (or equal fixed) first dimension.
        shapes: explicit input shapes by input name.
        settings: a ready settings dataclass for this runtime; or give its fields as
            keywords (``threads=1``), which are validated (unknown keys are errors).

    Raises:
        RunnerError: unknown runtime, bad settings, unavailable device/provider.
        MissingDependencyError: the runtime's package is not installed (message has the pip command).
        SpecError: missing/unreadable model file, or input shapes that do not fit the model.
        ArtifactError: the file lies in an edgeprune artifact folder whose files do not match its
            manifest.json (a crash between two writes, a file replaced by hand).
    """
    from edgeprune.files.manifest import manifest_of_file

    manifest_of_file(path, kinds=("export", "quantize"))  # a file of an edgeprune folder must match its manifest (ArtifactError names it)
    entry = runtime_entry(runtime)
    if settings is None:
        settings = make_settings(entry.name, values)
    elif values:
        raise RunnerError(f"give either settings= or setting keywords, not both ({', '.join(values)})")
    return entry.opener(path, settings, batch=batch, shapes=shapes)
