"""torch -> ONNX: export, simplify with onnxsim, stamp ``metadata_props``.

Which exporter. ``torch.onnx.export`` has two: the TorchScript tracer (``dynamo=False``)
and the torch.export-based one (``dynamo=True``, the default since torch 2.9). Measured
here with torch 2.14 on resnet20 / mobilenet_v2:

- ``dynamo=True`` needs ``onnxscript``, which is neither installed nor in the
  ``edgeprune[onnx]`` extra (it is on PyPI). With it, an export took ~5 s instead of
  ~0.2-0.4 s, printed progress to stdout, and could not down-convert to opset 17 (the
  onnx version converter failed on its output and left opset 18).
- ``dynamo=False`` still works (with a deprecation warning), honours ``opset_version``
  exactly, makes the batch dimension dynamic through ``dynamic_axes``, folds eval-mode
  BatchNorm into the convolutions, and has no dependency beyond torch and onnx.

So the default is the TorchScript exporter; ``exporter="dynamo"`` is wired up for the day
the TorchScript one is removed (the file records which one ran).

Batch. The batch dimension is dynamic by default (``dim_param "batch"``): ONNX Runtime and
OpenVINO both run such a graph at any batch (edgeprune's runners reshape to a static
shape before compiling, so kernels are the same as for a fixed batch), and one file then
serves latency (batch 1) and throughput profiles. ``batch=N`` fixes it for runtimes or
compilers that want static shapes.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from edgeprune.export.options import ExportError
from edgeprune.files.onnx_metadata import drop_props
from edgeprune.runtime.base import require

INPUT_NAME = "input"
OUTPUT_NAME = "logits"
BATCH_DIM = "batch"


def export_onnx(
    model: Any,
    example: Any,
    path: str | os.PathLike,
    *,
    opset: int,
    dynamic_batch: bool = True,
    exporter: str = "torchscript",
) -> list[str]:
    """Export ``model`` (eval mode) traced on ``example`` (NCHW tensor) to ``path``.

    The graph has one input ``input`` and one output ``logits``; with ``dynamic_batch`` their
    first dimension is the symbol ``batch``. Returns the tracer's warnings (e.g. Python
    control flow on tensor values, which a trace freezes): worth a look even when parity
    passed, since parity only sees the inputs it was given.

    Raises:
        ExportError: the model cannot be exported; names the unsupported op and the module it
            sits in when torch says which.
        MissingDependencyError: onnx (or onnxscript for ``exporter="dynamo"``) is missing.
    """
    require("onnx", "onnx")
    if exporter == "dynamo":
        _export_dynamo(model, example, path, opset, dynamic_batch)
        return []
    return _export_torchscript(model, example, path, opset, dynamic_batch)


def _export_torchscript(model, example, path, opset: int, dynamic_batch: bool) -> list[str]:
    import torch

    axes = {INPUT_NAME: {0: BATCH_DIM}, OUTPUT_NAME: {0: BATCH_DIM}} if dynamic_batch else None
    with _captured_output() as captured, warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")  # recorded, not printed: the deprecation notice is dropped
        try:
            torch.onnx.export(
                model,
                (example,),
                str(path),
                dynamo=False,
                input_names=[INPUT_NAME],
                output_names=[OUTPUT_NAME],
                opset_version=opset,
                dynamic_axes=axes,
                do_constant_folding=True,
            )
        except Exception as err:  # noqa: BLE001 - any tracer/exporter failure is the model's
            failure = err
        else:
            failure = None
    if failure is not None:
        raise ExportError(describe_export_failure(failure, captured(), opset)) from None
    found = [str(w.message).splitlines()[0] for w in caught if issubclass(w.category, torch.jit.TracerWarning)]
    return list(dict.fromkeys(found))  # unique, in order


def _export_dynamo(model, example, path, opset: int, dynamic_batch: bool) -> None:
    import torch

    from edgeprune.errors import MissingDependencyError

    try:
        import onnxscript  # noqa: F401
    except ImportError:
        raise MissingDependencyError(
            "the dynamo ONNX exporter needs onnxscript; install it with: pip install onnxscript "
            "(or use the default TorchScript exporter)"
        ) from None
    shapes = ({0: torch.export.Dim(BATCH_DIM, min=1)},) if dynamic_batch else None
    with _captured_output() as captured, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            program = torch.onnx.export(
                model, (example,), dynamo=True, input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                opset_version=opset, dynamic_shapes=shapes, external_data=False,
            )
            program.save(str(path), external_data=False)
        except Exception as err:  # noqa: BLE001
            failure = err
        else:
            failure = None
    if failure is not None:
        raise ExportError(describe_export_failure(failure, captured(), opset)) from None


_OPERATOR_RE = re.compile(r"operator '([\w:.]+)'")


def describe_export_failure(err: BaseException, log: str, opset: int) -> str:
    """A one-line message for an exporter exception, naming the op and module where known.

    The TorchScript exporter's own message names the op (``aten::special_i1``); the graph it
    logs at the exception carries each node's module scope, which gives the module.
    """
    text = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    match = _OPERATOR_RE.search(str(err))
    if match:
        op = match.group(1)
        where = locate_op(op, log)
        place = f" in module {where}" if where else ""
        return (
            f"torch.onnx cannot export this model: operator {op!r}{place} has no ONNX translation "
            f"at opset {opset} ({text}). Try a higher --opset, or replace the operation in the model"
        )
    return f"torch.onnx cannot export this model: {type(err).__name__}: {text}"


def locate_op(op: str, log: str) -> str | None:
    """``'blk.1' (Inner)`` for the first node running ``op`` in a logged TorchScript graph.

    Scope strings look like ``pkg.Net::/torch.nn.modules.container.Sequential::blk/pkg.Inner::blk.1``:
    the last segment holds the class and the module's qualified name.
    """
    for line in log.splitlines():
        if f"= {op}(" not in line or "scope:" not in line:
            continue
        scope = line.split("scope:", 1)[1].split(" # ", 1)[0].strip()
        cls, _, name = scope.split("/")[-1].partition("::")
        cls = cls.rsplit(".", 1)[-1]
        return f"{name!r} ({cls})" if name else f"(the top-level forward of {cls})"
    return None


@contextlib.contextmanager
def _captured_output() -> Iterator[Any]:
    """Send fds 1 and 2 to a temporary file for the block; yield a function reading it.

    The TorchScript exporter prints its whole IR graph from C++ when it fails, which
    ``contextlib.redirect_stdout`` cannot catch; the CLI shows a one-line error instead.
    """
    text = ""
    try:
        saved = [os.dup(1), os.dup(2)]
    except OSError:  # no stdout/stderr to redirect (closed fds): run uncaptured
        yield lambda: text
        return
    with tempfile.TemporaryFile(mode="w+b") as sink:
        sys.stdout.flush()
        sys.stderr.flush()
        try:
            os.dup2(sink.fileno(), 1)
            os.dup2(sink.fileno(), 2)
            yield lambda: text
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            for fd in saved:
                os.close(fd)
            sink.seek(0)
            text = sink.read().decode("utf-8", errors="replace")


@dataclass(frozen=True)
class SimplifyOutcome:
    simplified: bool
    reason: str | None  # why not, when not simplified
    onnxsim_version: str | None


def simplify_onnx(path: str | os.PathLike) -> SimplifyOutcome:
    """Simplify the ONNX file at ``path`` in place with onnxsim, or leave it and say why.

    onnxsim's own random-input check is off: the export's parity check runs on the final
    file anyway. The ``onnxsim.*`` bookkeeping it adds to ``metadata_props`` is dropped.
    """
    try:
        import onnxsim
    except ImportError as err:
        return SimplifyOutcome(
            False, f"onnxsim is not installed ({err}); install it with: pip install 'edgeprune[onnx]'", None
        )
    import onnx

    version = str(getattr(onnxsim, "__version__", "unknown"))
    model = onnx.load(str(path))
    try:
        with _captured_output(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            simplified, ok = onnxsim.simplify(model, **_supported(onnxsim.simplify, certify=False, check_n=0))
    except Exception as err:  # noqa: BLE001 - onnxsim failures are reported, not fatal
        first = str(err).strip().splitlines()[0] if str(err).strip() else ""
        return SimplifyOutcome(False, f"onnxsim failed: {type(err).__name__}: {first}", version)
    if not ok:
        return SimplifyOutcome(False, "onnxsim reported that its simplified model failed its check", version)
    drop_props(simplified, "onnxsim.")
    onnx.save(simplified, str(path))
    return SimplifyOutcome(True, None, version)


def _supported(fn: Any, **kwargs: Any) -> dict[str, Any]:
    """The keyword arguments ``fn`` accepts (onnxsim's signature differs across versions)."""
    import inspect

    params = inspect.signature(fn).parameters
    return {k: v for k, v in kwargs.items() if k in params}


def onnx_opset(path: str | os.PathLike) -> int:
    """The default-domain opset a file declares."""
    import onnx

    model = onnx.load(str(Path(path)), load_external_data=False)
    return next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))
