from __future__ import annotations

from edgeprune.profile.machine import machine_info, parse_cpuinfo

X86 = """processor\t: 0
vendor_id\t: GenuineIntel
model\t\t: 143
model name\t: Intel(R) Xeon(R) Platinum 8480+
physical id\t: 0
cpu cores\t: 56
flags\t\t: fpu sse4_2 avx avx2 fma avx512f avx512_vnni amx_tile amx_bf16 amx_int8 avx512_bf16
processor\t: 1
model\t\t: 143
model name\t: Intel(R) Xeon(R) Platinum 8480+
physical id\t: 1
cpu cores\t: 56
"""

ARM = """processor\t: 0
BogoMIPS\t: 108.00
Features\t: fp asimd evtstrm crc32 asimddp asimdhp i8mm bf16
CPU implementer\t: 0x41
CPU part\t: 0xd0b
Model\t\t: Raspberry Pi 5 Model B Rev 1.0
"""


def test_parse_x86_cpuinfo():
    info = parse_cpuinfo(X86)
    assert info["cpu"] == "Intel(R) Xeon(R) Platinum 8480+"  # not the numeric "model" line
    assert {"avx2", "avx512f", "avx512_vnni", "amx_tile", "avx512_bf16"} <= set(info["isa"])
    assert "fpu" not in info["isa"]
    assert info["physical_cores"] == 112


def test_parse_arm_cpuinfo():
    info = parse_cpuinfo(ARM)
    assert info["cpu"] == "Raspberry Pi 5 Model B Rev 1.0"
    assert {"asimd", "asimddp", "i8mm", "bf16"} <= set(info["isa"])


def test_machine_info_keys():
    info = machine_info()
    assert {"cpu", "isa", "physical_cores", "logical_cores", "usable_cores", "os", "arch"} <= set(info)
    assert info["cpu"]
    assert machine_info("/nonexistent/cpuinfo")["isa"] == []
