"""Options shared by several commands, declared once."""

from __future__ import annotations

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
    module, shape = build_model(spec, parse_input_shape(input_shape), weights)
    return module, spec.text, shape



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
