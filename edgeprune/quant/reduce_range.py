"""Reduced weight range (7-bit codes in int8) for x86 CPUs whose int8 kernels saturate.

ONNX Runtime's x86 u8 x s8 kernels on CPUs without VNNI (AVX2, AVX-512 without VNNI) multiply
with VPMADDUBSW, which adds pairs of u8 x s8 products into a *saturating* int16: two products
of 255 x 127 overflow it. ONNX Runtime's documentation names the remedy, weights on 7 bits
(`reduce_range`): 2 x 255 x 64 = 32640 fits. VNNI (VPDPBUSD) accumulates in int32 and needs
nothing. Measured on an AVX2-only AMD EPYC: EfficientNet-Lite0 int8 (ACIQ + bias correction)
gave 10.4 dB logit SQNR on ONNX Runtime's int8 kernels against 22.4 dB for the same file
computed in float; with 7-bit weights 17.7 dB on the kernels (17.8 dB in float).

``auto`` decides from the CPU this runs on (x86 without avx512_vnni / avx_vnni / amx_int8: on),
which is where the quantizer measures the file; quantizing for another device, say ``on`` or
``off`` for that device.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from edgeprune.quant.qdq import QuantError

VNNI_FLAGS = ("avx512_vnni", "avx_vnni", "amx_int8")
X86_ARCHES = ("x86_64", "amd64", "i386", "i686", "x86")
SETTINGS = ("auto", "on", "off")
REDUCED_BITS = 7


@dataclass(frozen=True)
class ReduceRange:
    """Whether weights are limited to 7-bit codes, and why."""

    enabled: bool
    setting: str  # auto | on | off
    reason: str

    def max_weight_bits(self) -> int:
        return REDUCED_BITS if self.enabled else 8

    def to_json(self) -> dict[str, Any]:
        return {"enabled": self.enabled, "setting": self.setting, "reason": self.reason}


def int8_kernels_saturate(machine: dict[str, Any]) -> bool:
    """True for x86 CPUs without VNNI (their u8 x s8 int8 kernels saturate int16 pair sums)."""
    arch = str(machine.get("arch") or "").lower()
    return arch in X86_ARCHES and not any(f in machine.get("isa", ()) for f in VNNI_FLAGS)


def resolve_reduce_range(setting: bool | str | None, machine: dict[str, Any] | None = None) -> ReduceRange:
    """``setting``: None / "auto" (from this CPU), True / "on", False / "off"."""
    from edgeprune.quant.config import QuantizeConfig

    config = QuantizeConfig(reduce_range=setting)  # type: ignore[arg-type]
    error = config.errors().get("reduce_range")
    if error:
        raise QuantError(error)
    setting = config.reduce_range
    if setting != "auto":
        return ReduceRange(setting == "on", setting, f"asked for ({setting})")
    if machine is None:
        from edgeprune.profile.machine import machine_info

        machine = machine_info()
    cpu = f"{machine.get('cpu') or 'this CPU'} ({machine.get('arch')})"
    if int8_kernels_saturate(machine):
        return ReduceRange(True, "auto", f"auto: {cpu} has no VNNI ({', '.join(VNNI_FLAGS)}), so ONNX Runtime's "
                                         "u8 x s8 kernels saturate with 8-bit weights; weights use 7-bit codes")
    return ReduceRange(False, "auto", f"auto: {cpu} does not saturate int8 products (VNNI or not x86)")
