"""Input preprocessing a model expects: per-channel mean/std applied to pixels in [0, 1].

    x = (pixels / 255 - mean[c]) / std[c]        pixels: uint8 image, NCHW

Exported models carry this as JSON (ONNX ``metadata_props["edgeprune.preprocess"]``), so a
runtime on a board can feed real images without knowing where the model came from.

Defaults by model spec:

    torchvision:NAME                ImageNet mean/std (3 channels)
    edgeprune:NAME, 1 channel       Fashion-MNIST (the built-in dataset)
    edgeprune:NAME, 3 channels      CIFAR-10
    package.module:function         none: give --mean and --std
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Sequence

from edgeprune.errors import SpecError

SCALE = "pixels in [0,1]"


@dataclass(frozen=True)
class Preprocess:
    """Per-channel normalization; ``name`` says where the values come from (for reports)."""

    mean: tuple[float, ...]
    std: tuple[float, ...]
    name: str = "custom"

    def __post_init__(self) -> None:
        if not self.mean or len(self.mean) != len(self.std):
            raise SpecError(
                f"preprocessing: mean has {len(self.mean)} values and std has {len(self.std)}; "
                "give one value per input channel to each"
            )
        if any(s <= 0 for s in self.std):
            raise SpecError(f"preprocessing: every std value must be positive, got {list(self.std)}")

    @property
    def channels(self) -> int:
        return len(self.mean)

    def check_channels(self, input_shape: Sequence[Any]) -> None:
        """SpecError unless there is one mean/std value per channel of an NCHW ``input_shape``."""
        if len(input_shape) < 2:
            raise SpecError(f"input shape {list(input_shape)} has no channel dimension")
        channels = input_shape[1]
        if channels != self.channels:
            raise SpecError(
                f"preprocessing {self.name}: mean/std have {self.channels} values, but the input "
                f"shape {list(input_shape)} has {channels} channels; give --mean and --std with "
                f"{channels} comma-separated values each"
            )

    def to_json(self, input_shape: Sequence[Any]) -> dict[str, Any]:
        """The ``edgeprune.preprocess`` record: mean, std, input shape and the pixel scale."""
        return {
            "mean": list(self.mean),
            "std": list(self.std),
            "input_shape": list(input_shape),
            "scale": SCALE,
        }

    def to_metadata(self, input_shape: Sequence[Any]) -> str:
        return json.dumps(self.to_json(input_shape), separators=(", ", ": "))


IMAGENET = Preprocess((0.485, 0.456, 0.406), (0.229, 0.224, 0.225), "imagenet")
FASHION_MNIST = Preprocess((0.2860,), (0.3530,), "fashion-mnist")
CIFAR10 = Preprocess((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616), "cifar10")


def default_preprocess(spec: str, channels: int) -> Preprocess | None:
    """The preprocessing a model spec implies, or None when it implies none (user models)."""
    from edgeprune.models.spec import parse_spec

    source = parse_spec(spec).source
    if source == "torchvision":
        return IMAGENET
    if source == "edgeprune":
        return {1: FASHION_MNIST, 3: CIFAR10}.get(channels)
    return None


def parse_values(text: str, option: str) -> tuple[float, ...]:
    """'0.485,0.456,0.406' -> (0.485, 0.456, 0.406); SpecError naming ``option`` otherwise."""
    try:
        values = tuple(float(v) for v in text.replace(" ", "").split(","))
    except ValueError:
        raise SpecError(f"{option} {text!r} must be comma-separated numbers, e.g. 0.485,0.456,0.406") from None
    return values


def resolve_preprocess(
    spec: str,
    input_shape: Sequence[int],
    mean: str | Sequence[float] | None = None,
    std: str | Sequence[float] | None = None,
) -> Preprocess:
    """The spec's default preprocessing, or the ``mean``/``std`` override; checked against the shape.

    Raises:
        SpecError: only one of mean/std given, no default for this spec and no override, or a
            channel count that does not match ``input_shape``.
    """
    if (mean is None) != (std is None):
        raise SpecError("give both --mean and --std, or neither (to use the model's defaults)")
    if mean is not None:
        mean_v = parse_values(mean, "--mean") if isinstance(mean, str) else tuple(float(v) for v in mean)
        std_v = parse_values(std, "--std") if isinstance(std, str) else tuple(float(v) for v in std)  # type: ignore[arg-type]
        pre = Preprocess(mean_v, std_v, "custom")
    else:
        channels = input_shape[1] if len(input_shape) > 1 else 0
        found = default_preprocess(spec, channels)
        if found is None:
            raise SpecError(
                f"no default preprocessing for {spec} with {channels} input channels; give --mean "
                "and --std (per channel, for pixels in [0,1]), e.g. --mean 0.485,0.456,0.406 "
                "--std 0.229,0.224,0.225"
            )
        pre = found
    pre.check_channels(input_shape)
    return pre


def decide_feed(
    spec: str,
    input_shape: Sequence[int],
    *,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    weights_record: dict[str, Any] | None = None,
    from_weights: bool = False,
) -> Preprocess | None:
    """What a model is fed while it trains or is evaluated here, decided once:

    1. ``mean``/``std`` given (``--mean/--std``, the pipeline's ``[model]``);
    2. the preprocessing recorded by the folder its weights come from (a manifest record);
    3. for trained weights, the spec's default (torchvision: ImageNet's);
    4. None: training from scratch with none given, so the data's own statistics are used.
    """
    if mean is not None or std is not None:
        return resolve_preprocess(spec, input_shape, mean, std)
    if weights_record is not None:
        pre = Preprocess(tuple(weights_record["mean"]), tuple(weights_record["std"]),
                         str(weights_record.get("source", "the weights' folder")))
        pre.check_channels(input_shape)
        return pre
    if from_weights:
        found = default_preprocess(spec, input_shape[1] if len(input_shape) > 1 else 0)
        if found is not None:
            return found
    return None
