"""What machine a profile ran on: CPU model, ISA flags that change kernel choice, cores, OS."""

from __future__ import annotations

import os
import platform
from typing import Any

# ISA features that decide which conv/GEMM kernels oneDNN, MLAS and Arm Compute pick.
ISA_FLAGS = (
    # x86
    "sse4_2", "avx", "avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512vl", "avx512_vnni",
    "avx512_bf16", "avx512_fp16", "avx_vnni", "amx_tile", "amx_bf16", "amx_int8",
    # arm64 (/proc/cpuinfo "Features")
    "asimd", "asimdhp", "asimddp", "fphp", "sve", "sve2", "i8mm", "bf16", "sme",
)


def parse_cpuinfo(text: str) -> dict[str, Any]:
    """CPU model name, ISA flags of interest and physical core count from /proc/cpuinfo text."""
    model = None
    flags: set[str] = set()
    cores_per_socket: dict[str, int] = {}
    physical_id = "0"
    arm_part = None
    fallback = None  # "Hardware" / "Model" lines on Arm boards
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if not sep:
            continue
        key, value = key.strip().lower(), value.strip()
        if key == "model name" and model is None:
            model = value
        elif key in ("flags", "features"):
            flags.update(value.split())
        elif key == "physical id":
            physical_id = value
        elif key == "cpu cores" and value.isdigit():
            cores_per_socket[physical_id] = int(value)
        elif key == "cpu part" and arm_part is None:
            arm_part = value
        elif key in ("hardware", "model") and fallback is None and value and not value.isdigit():
            fallback = value
    if model is None:
        model = fallback or (f"arm cpu part {arm_part}" if arm_part else None)
    return {
        "cpu": model,
        "isa": [f for f in ISA_FLAGS if f in flags],
        "physical_cores": sum(cores_per_socket.values()) or None,
    }


def machine_info(cpuinfo_path: str = "/proc/cpuinfo") -> dict[str, Any]:
    """A dict describing this machine, for profile reports."""
    try:
        with open(cpuinfo_path, encoding="utf-8", errors="replace") as f:
            info = parse_cpuinfo(f.read())
    except OSError:
        info = {"cpu": None, "isa": [], "physical_cores": None}
    if not info["cpu"]:
        info["cpu"] = platform.processor() or platform.machine()
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count()
    return {
        **info,
        "logical_cores": os.cpu_count(),
        "usable_cores": usable,
        "os": platform.platform(),
        "arch": platform.machine(),
        "hostname": platform.node(),
        "python": platform.python_version(),
    }
