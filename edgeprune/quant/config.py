"""`QuantizeConfig`: every quantization setting in one frozen value, and the one place they
are checked (`errors`), for the library, the CLI and the pipeline config alike.

    config = QuantizeConfig(method="aciq", weight_bits=4, bias_correction=True)  # True = "data"
    config.errors()        # {} or {"weight_bits": "weight bits must be ...", ...}
    QuantizeConfig(target="x86-ort-1t")   # the device quantized for: its reduce_range decides "auto"
    QuantizeConfig.from_json(config.to_json()) == config
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, fields
from typing import Any, Mapping

from edgeprune.quant.bias_correction import KINDS as BIAS_CORRECTIONS
from edgeprune.quant.qdq import QuantError
from edgeprune.quant.reduce_range import SETTINGS as REDUCE_RANGE_SETTINGS

METHODS = ("aciq", "minmax", "entropy", "percentile")
ACT_BITS = (4, 8)
DEFAULT_BIAS_CORRECTION = "data"


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _target_error(target: Any) -> str | None:
    """Why ``target`` is not a loadable target name / TOML path, or None."""
    if not isinstance(target, str) or not target:
        return f"target must be a target name or a path to a target TOML file, got {target!r}"
    from edgeprune.targets import TargetError, load_target

    try:
        load_target(target)
    except TargetError as err:
        return str(err)
    return None


@dataclass(frozen=True)
class QuantizeConfig:
    """Quantization settings.

    Attributes:
        method: aciq | minmax | entropy | percentile.
        weight_bits: 2..8 (per output channel, symmetric); below 8 is simulated.
        act_bits: 8 or 4 (per tensor, unsigned); 4 is simulated.
        bias_correction: None, or "data" | "mean-var" | "both" (edgeprune.quant.bias_correction);
            True is taken as "data", False as None.
        bit_allocation: per-channel weight bits under the ``weight_bits`` average; None = on for
            aciq below 8 bits (`bit_allocation_enabled`).
        openvino: also write OpenVINO IR and check it; None = when openvino is installed and the
            run is real int8.
        reduce_range: auto | on | off (True / False are taken as on / off): weights on 7-bit codes
            (edgeprune.quant.reduce_range).
        seed: for the activation subsamples of the statistics pass.
        target: the device the model is quantized for, a target name or a path to a target TOML
            (edgeprune.targets); its ``[quantize] reduce_range`` decides an ``auto`` reduce_range
            before this CPU does. None: no target.
    """

    method: str = "aciq"
    weight_bits: int = 8
    act_bits: int = 8
    bias_correction: str | None = None
    bit_allocation: bool | None = None
    openvino: bool | None = None
    reduce_range: str = "auto"
    seed: int = 0
    target: str | None = None

    def __post_init__(self) -> None:
        if self.bias_correction is True or self.bias_correction is False:
            object.__setattr__(self, "bias_correction", DEFAULT_BIAS_CORRECTION if self.bias_correction else None)
        if self.reduce_range is None or self.reduce_range is True or self.reduce_range is False:
            setting = {None: "auto", True: "on", False: "off"}[self.reduce_range]
            object.__setattr__(self, "reduce_range", setting)
        if isinstance(self.target, os.PathLike):
            object.__setattr__(self, "target", os.fspath(self.target))

    @property
    def bit_allocation_enabled(self) -> bool:
        if self.bit_allocation is None:
            return self.method == "aciq" and _is_int(self.weight_bits) and self.weight_bits < 8
        return bool(self.bit_allocation)

    @property
    def real_int8(self) -> bool:
        """W8A8: runs on the runtimes' int8 kernels (anything else is simulated)."""
        return self.weight_bits == 8 and self.act_bits == 8

    def errors(self) -> dict[str, str]:
        """What is wrong with each setting, by field name; empty when all are fine."""
        errors: dict[str, str] = {}
        if self.method not in METHODS:
            errors["method"] = f"unknown quantization method {self.method!r}; choose from {', '.join(METHODS)}"
        if not _is_int(self.weight_bits) or not 2 <= self.weight_bits <= 8:
            errors["weight_bits"] = f"weight bits must be an integer from 2 to 8, got {self.weight_bits!r}"
        if not _is_int(self.act_bits) or self.act_bits not in ACT_BITS:
            errors["act_bits"] = (f"activation bits must be one of {', '.join(map(str, ACT_BITS))}, "
                                  f"got {self.act_bits!r}")
        if self.bias_correction is not None and self.bias_correction not in BIAS_CORRECTIONS:
            errors["bias_correction"] = (f"bias_correction must be true/false or one of "
                                         f"{', '.join(BIAS_CORRECTIONS)}, got {self.bias_correction!r}")
        if self.bit_allocation is not None and not isinstance(self.bit_allocation, bool):
            errors["bit_allocation"] = f"bit_allocation must be true, false or unset, got {self.bit_allocation!r}"
        if self.openvino is not None and not isinstance(self.openvino, bool):
            errors["openvino"] = f"openvino must be true, false or unset, got {self.openvino!r}"
        elif self.openvino and self.act_bits != 8:
            errors["openvino"] = "OpenVINO IR is written for 8-bit activations only (its CPU plugin has no uint4)"
        if self.reduce_range not in REDUCE_RANGE_SETTINGS:
            errors["reduce_range"] = f"reduce_range must be auto, on or off (or true/false), got {self.reduce_range!r}"
        if not _is_int(self.seed) or self.seed < 0:
            errors["seed"] = f"seed must be a non-negative integer, got {self.seed!r}"
        if self.target is not None:
            target_error = _target_error(self.target)
            if target_error:
                errors["target"] = target_error
        return errors

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> QuantizeConfig:
        """The config `to_json` wrote; QuantError naming any unknown key."""
        known = [f.name for f in fields(cls)]
        unknown = [k for k in data if k not in known]
        if unknown:
            raise QuantError(f"unknown quantize settings {', '.join(map(str, unknown))}; known: {', '.join(known)}")
        return cls(**dict(data))
