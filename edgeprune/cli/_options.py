"""Options shared by several commands, declared once."""

from __future__ import annotations

import contextlib

import click

from edgeprune.pruning.request import DEFAULT_TARGET

model_argument = click.argument("model", metavar="MODEL")

weights_option = click.option(
    "--weights",
    type=click.Path(dir_okay=False),
    default=None,
    help="state_dict to load into MODEL (torch.save of model.state_dict(); loaded with weights_only=True).",
)

input_shape_option = click.option(
    "--input-shape",
    default=None,
    metavar="NxCxHxW",
    help="Input shape, e.g. 1x3x224x224. Default: the model's own (224x224 for torchvision, 1x1x28x28 for the zoo).",
)

MODEL_HELP = (
    "MODEL is a spec: torchvision:NAME (random init unless --weights), edgeprune:resnet20 / "
    "edgeprune:resnet56 (CIFAR-style, input 1x1x28x28 by default), or package.module:function "
    "for your own factory. Keyword arguments may follow: 'torchvision:resnet18(num_classes=10)'."
)


def load_model(model: str, weights: str | None, input_shape: str | None):
    """Build the model from CLI arguments: returns (module, spec text, input shape)."""
    from edgeprune.models import build_model, parse_input_shape, parse_spec

    spec = parse_spec(model)
    shape = parse_input_shape(input_shape)
    check_weights(weights)
    with model_errors(spec.text):
        module, shape = build_model(spec, shape, weights)
    return module, spec.text, shape


def check_weights(weights: str | None) -> None:
    """--weights: an existing file whose zip records pass their CRC check and whose tensors are
    all finite (SpecError naming the file and the tensor)."""
    if weights is None:
        return
    from edgeprune.files.weights import check_weights_file

    check_weights_file(weights, what="--weights file")


@contextlib.contextmanager
def model_errors(what: str):
    """A model factory (the user's own code, or a torchvision builder given bad arguments) that
    raises becomes a SpecError naming the model, not a traceback."""
    from edgeprune.errors import EdgepruneError, SpecError

    try:
        yield
    except EdgepruneError:
        raise
    except Exception as err:  # noqa: BLE001 - whatever the factory raised
        raise SpecError(f"model {what}: building it failed ({type(err).__name__}: {err})") from None



align_option = click.option(
    "--align",
    default="auto",
    show_default=True,
    help="Round every kept width to a multiple of N (never to zero); 'auto' takes the alignment of --target.",
)

target_option = click.option(
    "--target",
    default=DEFAULT_TARGET,
    show_default=True,
    help="Device target (targets/NAME.toml) whose alignment --align auto uses.",
)


def check_out(out: str, *, beside: bool, option: str = "--out") -> None:
    """Before any work: ``out`` can be written. A folder that exists must be a folder; where it
    does not exist yet, its nearest existing parent must be a writable folder. ``beside``: the
    command builds next to ``out`` and swaps it in (export, quantize, prune), so the parent
    must be writable too. Probed by creating a file (as root, permission bits say nothing).

    Raises:
        OutputError: naming the option, the folder and why.
    """
    import os
    import tempfile
    from pathlib import Path

    from edgeprune.files.staging import OutputError

    path = Path(out).absolute()
    if path.exists() and not path.is_dir():
        raise OutputError(f"{option} {out}: exists and is not a folder")
    probes = [path] if path.is_dir() else []
    if beside or not probes:
        parent = path.parent
        while not parent.exists() and parent != parent.parent:
            parent = parent.parent
        if not parent.is_dir():
            raise OutputError(f"{option} {out}: {parent} is not a folder")
        probes.append(parent)
    for folder in probes:
        try:
            fd, tmp = tempfile.mkstemp(prefix=".edgeprune-write-test.", dir=folder)
        except OSError as err:
            raise OutputError(f"{option} {out}: cannot write into {folder} ({err.strerror or err})") from None
        os.close(fd)
        os.unlink(tmp)


def check_file_out(path: str | None, option: str = "--json") -> None:
    """Before any work: the folder a result file (``--json PATH``) goes into can be written
    (it is created if missing, so its nearest existing parent must be writable)."""
    if path is None:
        return
    from pathlib import Path

    target = Path(path).absolute()
    if target.is_dir():
        from edgeprune.files.staging import OutputError

        raise OutputError(f"{option} {path}: is a folder; give a file name")
    check_out(str(target.parent), beside=False, option=f"{option} {path}: folder")
