"""Reduced weight range (7-bit codes in int8) for x86 CPUs whose int8 kernels saturate.

ONNX Runtime's x86 u8 x s8 kernels on CPUs without VNNI (AVX2, AVX-512 without VNNI) multiply
with VPMADDUBSW, which adds pairs of u8 x s8 products into a *saturating* int16: two products
of 255 x 127 overflow it. ONNX Runtime's documentation names the remedy, weights on 7 bits
(`reduce_range`): 2 x 255 x 64 = 32640 fits. VNNI (VPDPBUSD) accumulates in int32 and needs
nothing. Measured on an AVX2-only AMD EPYC: EfficientNet-Lite0 int8 (ACIQ + bias correction)
gave 10.4 dB logit SQNR on ONNX Runtime's int8 kernels against 22.4 dB for the same file
computed in float; with 7-bit weights 17.7 dB on the kernels (17.8 dB in float).

Who decides, first that applies (`ReduceRange.decided_by` says which did):

1. ``setting``: an explicit ``on`` / ``off`` (``--reduce-range on|off``, ``reduce_range = true|false``);
2. ``target``: the device the model is quantized for, when its target file says
   ``[quantize] reduce_range = true|false`` (``--target NAME``; edgeprune.targets);
3. ``cpu``: ``auto`` without either, decided from the CPU this runs on (x86 without
   avx512_vnni / avx_vnni / amx_int8: on), which is where the quantizer measures the file.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from edgeprune.quant.qdq import QuantError

VNNI_FLAGS = ("avx512_vnni", "avx_vnni", "amx_int8")
X86_ARCHES = ("x86_64", "amd64", "i386", "i686", "x86")
SETTINGS = ("auto", "on", "off")
DECIDERS = ("setting", "target", "cpu")
REDUCED_BITS = 7


@dataclass(frozen=True)
class ReduceRange:
    """Whether weights are limited to 7-bit codes, and why.

    ``setting``: auto | on | off as asked; ``decided_by``: setting | target | cpu (see the
    module docstring); ``target``: the name of the target quantized for, or None."""

    enabled: bool
    setting: str  # auto | on | off
    reason: str
    decided_by: str = "setting"
    target: str | None = None

    def max_weight_bits(self) -> int:
        return REDUCED_BITS if self.enabled else 8

    def to_json(self) -> dict[str, Any]:
        return {"enabled": self.enabled, "setting": self.setting, "reason": self.reason,
                "decided_by": self.decided_by, "target": self.target}


def int8_kernels_saturate(machine: dict[str, Any]) -> bool:
    """True for x86 CPUs without VNNI (their u8 x s8 int8 kernels saturate int16 pair sums)."""
    arch = str(machine.get("arch") or "").lower()
    return arch in X86_ARCHES and not any(f in machine.get("isa", ()) for f in VNNI_FLAGS)


def resolve_reduce_range(setting: Any, machine: dict[str, Any] | None = None,
                         target: Any = None) -> ReduceRange:
    """Decide reduce range: explicit on/off > the target's ``[quantize] reduce_range`` > this CPU.

    Args:
        setting: None / "auto", True / "on", False / "off"; or a QuantizeConfig, whose
            ``reduce_range`` and ``target`` are used.
        machine: the CPU an ``auto`` falls back to (default: this one, `machine_info`).
        target: the device quantized for: a target name, a path to a target TOML, a loaded
            edgeprune.targets.Target, or None.

    Raises:
        QuantError: a bad setting or a target that cannot be loaded (QuantizeConfig.errors).
    """
    from edgeprune.quant.config import QuantizeConfig
    from edgeprune.targets import Target, load_target

    if isinstance(setting, QuantizeConfig):
        setting, target = setting.reduce_range, setting.target if target is None else target
    loaded = target if isinstance(target, Target) else None
    config = QuantizeConfig(reduce_range=setting, target=None if loaded else target)  # type: ignore[arg-type]
    errors = config.errors()
    if "reduce_range" in errors:
        raise QuantError(errors["reduce_range"])
    if "target" in errors:
        raise QuantError(f"target: {errors['target']}")
    setting = config.reduce_range
    if loaded is None and config.target is not None:
        loaded = load_target(config.target)
    name = loaded.name if loaded is not None else None
    wanted = loaded.quantize.reduce_range if loaded is not None else None

    if setting != "auto":
        reason = f"asked for ({setting})"
        if wanted is not None and wanted != (setting == "on"):
            reason += f"; overrides target {name}'s reduce_range = {str(wanted).lower()}"
        return ReduceRange(setting == "on", setting, reason, "setting", name)
    if wanted is not None:
        why = ("its int8 kernels saturate with 8-bit weights (x86 without VNNI); weights use 7-bit codes"
               if wanted else "its int8 kernels do not saturate; weights use 8-bit codes")
        return ReduceRange(wanted, "auto", f"target {name}: [quantize] reduce_range = {str(wanted).lower()}, "
                                           f"{why}", "target", name)
    if machine is None:
        from edgeprune.profile.machine import machine_info

        machine = machine_info()
    cpu = f"{machine.get('cpu') or 'this CPU'} ({machine.get('arch')})"
    prefix = "auto" if name is None else f"auto (target {name} gives no [quantize] reduce_range, so this CPU decides)"
    if int8_kernels_saturate(machine):
        return ReduceRange(True, "auto", f"{prefix}: {cpu} has no VNNI ({', '.join(VNNI_FLAGS)}), so ONNX Runtime's "
                                         "u8 x s8 kernels saturate with 8-bit weights; weights use 7-bit codes",
                           "cpu", name)
    return ReduceRange(False, "auto", f"{prefix}: {cpu} does not saturate int8 products (VNNI or not x86)",
                       "cpu", name)
