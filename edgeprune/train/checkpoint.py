"""Training checkpoints: one file, written atomically at the end of every epoch, read back with
``torch.load(..., weights_only=True)`` (tensors, numbers, strings, lists and dicts only).

    {"format": "edgeprune.checkpoint/1", "epoch": completed epochs, "step": optimizer steps,
     "run": what the run was (spec, fingerprint, config, data, method) - checked on resume,
     "model": state_dict, "optimizer": state_dict, "scheduler": {"step": n},
     "method": method.state_dict(), "rng": {"torch", "numpy", "python"}, "metrics": [...]}
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from edgeprune.files.atomic import save_torch
from edgeprune.train.base import TrainError

FORMAT = "edgeprune.checkpoint/1"
FILENAME = "checkpoint.pt"


def rng_state() -> dict[str, Any]:
    """The global RNG states of torch, numpy and python, as weights_only-safe values."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    version, state, gauss = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "cached_gaussian": float(cached)},
        "python": {"version": version, "state": list(state), "gauss": gauss},
    }


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state((n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached_gaussian"]))
    p = state["python"]
    random.setstate((p["version"], tuple(p["state"]), p["gauss"]))


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> Path:
    return save_torch(path, {"format": FORMAT, **state})


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """The checkpoint at ``path`` after its zip records pass their CRC check and every tensor is
    finite (`edgeprune.files.weights`); TrainError naming the file (and the tensor) otherwise."""
    from edgeprune.files.weights import load_torch_file

    path = Path(path)
    state = load_torch_file(path, TrainError, what="checkpoint")
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise TrainError(f"{path}: not an edgeprune checkpoint (format {FORMAT!r} expected)")
    return state


def check_same_run(path: Path, saved: dict[str, Any], current: dict[str, Any]) -> None:
    """Refuse to resume a checkpoint made by a different run (other model, data, config)."""
    if saved.get("fingerprint") != current.get("fingerprint"):
        raise TrainError(
            f"{path} was written for model {saved.get('spec')} (fingerprint {saved.get('fingerprint')}) "
            f"but this run trains {current.get('spec')} (fingerprint {current.get('fingerprint')}); "
            "a checkpoint resumes only the model it was made for (use another --out for a new run)"
        )
    diffs = [k for k in sorted(set(saved) | set(current)) if saved.get(k) != current.get(k)]
    if diffs:
        shown = "; ".join(f"{k}: checkpoint {saved.get(k)!r}, now {current.get(k)!r}" for k in diffs[:4])
        raise TrainError(
            f"{path} belongs to a run with different settings ({shown}); resume with the same "
            "arguments, or use another --out for a new run"
        )
