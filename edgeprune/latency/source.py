"""Where a latency budget's numbers come from: a latency table and the target it was built on,
turned into a calibrated `LatencyCostModel` for one model (`latency_cost_model`)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

CALIBRATION_FILE = "latency_calibration.json"


@dataclass(frozen=True)
class LatencySource:
    """A table (`LatencyTable`), its target (`edgeprune.targets.Target`), and how long the
    model-level calibration times the model (``runs`` after ``warmup``)."""

    table: Any
    target: Any
    runs: int = 50
    warmup: int = 10

    def digest(self) -> str:
        """sha256 of the table's measured points: the identity of a run's latency numbers."""
        text = json.dumps(self.table.entries, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    @classmethod
    def load(cls, path: str, target_name: str | None = None, **timing: int) -> "LatencySource":
        """The table at ``path`` and its target (``target_name`` must be the table's, if given);
        LatencyTableError unless the table was measured on this machine and runtime."""
        from edgeprune.latency.table import LatencyTable, LatencyTableError, place
        from edgeprune.targets import load_target

        table = LatencyTable.load(path)
        if target_name is not None and target_name != table.target:
            raise LatencyTableError(f"{path}: the table was built for target {table.target!r}, not {target_name!r}")
        target = load_target(table.target)
        machine, runtime = place(target)
        table.check_same_place(machine, runtime, str(path))
        return cls(table, target, **timing)


def latency_cost_model(model, graph, input_shape, source: LatencySource, align: int, *,
                       scores=None, budget=None, folder: str | Path | None = None, progress: bool = False):
    """``graph.cost`` with the latency metric of ``model`` on the source's target, calibrated on
    the model itself (`edgeprune.latency.calibrate`) and, for a latency ``budget`` with the
    method's ``scores``, refined on what that budget allocates (`calibrate.refine`). With
    ``folder``, the calibration is kept in folder/latency_calibration.json and reused while the
    table, alignment and budget are the same, so that a resumed run allocates the same widths."""
    from edgeprune.latency.calibrate import calibrate, refine
    from edgeprune.latency.cost import Calibration, latency_cost
    from edgeprune.latency.layers import model_layers

    precision = source.table.precision
    cost = latency_cost(graph.cost, model_layers(model, input_shape, graph, precision), source.table)
    saved = Path(folder) / CALIBRATION_FILE if folder is not None else None
    if saved is not None and saved.is_file():
        data = json.loads(saved.read_text())
        if (data.get("table") == source.digest() and data.get("align") == align
                and data.get("budget") == (str(budget) if budget is not None else None)):
            return cost.calibrated(Calibration.from_json(data["calibration"]))
    cost = calibrate(model, graph, input_shape, cost, source.target, align, runs=source.runs,
                     warmup=source.warmup, progress=progress, precision=precision)
    if budget is not None and scores is not None and budget.metric == "latency":
        cost = refine(model, graph, input_shape, cost, source.target, scores, budget, align, runs=source.runs,
                      warmup=source.warmup, precision=precision)
    if saved is not None:
        from edgeprune.files.atomic import write_json

        write_json(saved, {"table": source.digest(), "align": align, "budget": str(budget) if budget is not None else None,
                           "calibration": cost.calibration.to_json()})
    return cost


def latency_report(cost, widths) -> dict[str, Any]:
    """The prune report's ``latency`` field: predicted ms of the pruned and dense model, and the
    ratio measured on the target if the calibration timed these widths (`calibrate.refine`)."""
    dense, pruned = cost.dense("latency"), cost.latency(widths)
    out = {"target": cost.target, "precision": cost.precision, "predicted_ms": pruned, "dense_predicted_ms": dense, "predicted_ratio": pruned / dense,
           "calibration": cost.calibration.to_json(), "layers_not_in_table": list(cost.skipped)}
    measured = [p for p in cost.calibration.points
                if "measured_ratio" in p and p.get("width_list") == [int(w) for w in widths]]
    if measured:  # these widths were timed on the target during the calibration's refinement
        out["measured_ratio"] = measured[-1]["measured_ratio"]
        out["measured_as"] = measured[-1]["widths"]
    return out
