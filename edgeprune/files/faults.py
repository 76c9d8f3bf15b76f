"""The fault-injection hook of the publish steps (tests only; a no-op otherwise).

Every file-system step that makes a result visible (an atomic rename of a file, a folder swap)
calls ``publish_step(label)``. With ``EDGEPRUNE_FAULT_LOG=FILE`` each label is appended to FILE
(so a test learns how many steps a command has); with ``EDGEPRUNE_FAULT_AT=N`` the process is
killed with SIGKILL at the N-th step (1-based), just before it happens, as a power cut or
``kill -9`` would.
"""

from __future__ import annotations

import os
import signal

_count = 0


def publish_step(label: str) -> None:
    global _count
    log, at = os.environ.get("EDGEPRUNE_FAULT_LOG"), os.environ.get("EDGEPRUNE_FAULT_AT")
    if not log and not at:
        return
    _count += 1
    if log:
        with open(log, "a", encoding="utf-8") as f:
            f.write(f"{os.getpid()} {_count} {label}\n")
    if at and _count == int(at):
        os.kill(os.getpid(), signal.SIGKILL)
