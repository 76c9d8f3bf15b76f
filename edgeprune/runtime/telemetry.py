"""OpenVINO's usage telemetry, turned off before anything imports openvino.

``openvino.convert_model`` (openvino/tools/ovc/convert_impl.py, telemetry_utils.py) starts
``openvino_telemetry.Telemetry(..., enable_opt_in_dialog=False)``, which treats a missing
consent file as consent: it creates ``~/intel/openvino_ga_cid`` (and ``openvino_telemetry``)
and sends each event from a ``multiprocessing.Process`` (backend_ga4.py), a network attempt in
a child process per event; Ctrl-C then prints every child's traceback. openvino_telemetry
2025.x reads no environment variable to opt out (only ``CI=true`` with ``disable_in_ci``, and
the ``opt_in_out --opt_out`` script, which itself writes ``~/intel``). So `disable` makes the
consent check answer "declined" and the senders do nothing, in this process, without writing
anything. It imports only ``openvino_telemetry`` (pure Python, no openvino), and is a no-op
when that package is not installed (openvino then uses its own no-op stub).
"""

from __future__ import annotations

import os

ENV = "EDGEPRUNE_OPENVINO_TELEMETRY"  # "1" leaves OpenVINO's telemetry as it is
_done = False


def disable() -> bool:
    """Turn OpenVINO telemetry off for this process (idempotent). Returns True when it is off
    (or not installed), False when the user asked to keep it (``EDGEPRUNE_OPENVINO_TELEMETRY=1``)."""
    global _done
    if _done:
        return True
    if os.environ.get(ENV) == "1":
        return False
    try:
        from openvino_telemetry import main as tm_main
        from openvino_telemetry.backend import backend_ga4
        from openvino_telemetry.utils import opt_in_checker, sender
    except Exception:  # noqa: BLE001 - not installed (or another layout): nothing to turn off
        _done = True
        return True

    declined = opt_in_checker.ConsentCheckResult.DECLINED

    def _check(self, enable_opt_in_dialog=True, disable_in_ci=False):  # noqa: ARG001
        return declined

    def _nothing(*args, **kwargs):  # noqa: ARG001
        return None

    opt_in_checker.OptInChecker.check = _check
    opt_in_checker.OptInChecker.create_or_check_consent_dir = lambda self: False
    opt_in_checker.OptInChecker.update_result = lambda self, result: False
    opt_in_checker.OptInChecker.opt_in_dialog = lambda self: opt_in_checker.DialogResult.DECLINED
    backends = [backend_ga4.GA4Backend]
    try:
        from openvino_telemetry.backend import backend_ga

        backends.append(backend_ga.GABackend)
    except Exception:  # noqa: BLE001 - older/newer layouts have only one backend
        pass
    for backend in backends:
        backend.send = _nothing
        backend.generate_new_cid_file = _nothing
    sender.TelemetrySender.send = _nothing
    tm_main.Telemetry.send_event = _nothing
    _done = True
    return True
