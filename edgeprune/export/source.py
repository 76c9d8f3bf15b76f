"""What to export: a folder written by `edgeprune prune` or `edgeprune train`, or a model spec,
as one ExportSource.

A folder brings its manifest: what the model was fed (mean/std) and its class names travel on
into the exported files. A prune folder also brings its plan: the exported files record the
plan's fingerprint (sha256 of its canonical JSON, 16 hex digits: two files with the same value
were slimmed by the same plan), the budget and the method.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgeprune.errors import SpecError
from edgeprune.files.hashing import sha256_json


@dataclass
class ExportSource:
    model: Any  # nn.Module in eval mode
    spec: str
    input_shape: tuple[int, ...]
    kind: str  # "pruned", "trained" or "spec"
    metadata: dict[str, str] = field(default_factory=dict)  # edgeprune.* keys for the files
    preprocess: Any = None  # Preprocess the folder's manifest records (None: a spec, or none recorded)
    classes: list[str] | None = None


    def resolve_preprocess(self, mean: Any = None, std: Any = None) -> Any:
        """What the exported files record: the folder's preprocessing (what the model was fed),
        or for a spec its default / ``mean``/``std``. Values that contradict the folder's are
        refused: the deployed model would be fed differently from how it was trained."""
        from edgeprune.models.preprocess import resolve_preprocess

        if self.preprocess is None:
            return resolve_preprocess(self.spec, self.input_shape, mean, std)
        if mean is not None or std is not None:
            given = resolve_preprocess(self.spec, self.input_shape, mean, std)
            if not _close(given.mean, self.preprocess.mean) or not _close(given.std, self.preprocess.std):
                raise SpecError(
                    f"--mean/--std ({list(given.mean)} / {list(given.std)}) contradict what the model was fed: "
                    f"mean {list(self.preprocess.mean)} std {list(self.preprocess.std)} "
                    f"({self.preprocess.name}, from the folder's manifest.json); drop --mean/--std"
                )
        self.preprocess.check_channels(self.input_shape)
        return self.preprocess


def _close(a: Any, b: Any) -> bool:
    return len(a) == len(b) and all(abs(x - y) <= 1e-6 for x, y in zip(a, b))


def plan_fingerprint(plan: Any) -> str:
    """sha256 (first 16 hex digits) of the plan's canonical JSON."""
    return sha256_json(plan.to_json())[:16]


def load_source(
    src: str,
    *,
    weights: str | Path | None = None,
    input_shape: tuple[int, ...] | None = None,
) -> ExportSource:
    """Build the model named by ``src``: an existing folder is a prune output, else a spec.

    Raises:
        SpecError: a missing file, a bad spec, weights given with a folder (its weights are in it).
        ArtifactError: a folder that is incomplete or whose files do not match its manifest.
    """
    from edgeprune.models.spec import build_model, parse_spec

    path = Path(src)
    if path.is_dir():
        if weights is not None:
            raise SpecError(f"{src}: a prune or train folder carries its own weights (model.pt); drop --weights")
        from edgeprune.models.preprocess import Preprocess
        from edgeprune.models.saved import load_saved

        saved = load_saved(path)
        metadata = {"edgeprune.spec": saved.spec}
        if saved.plan is not None:
            metadata |= {"edgeprune.plan_fingerprint": plan_fingerprint(saved.plan),
                         "edgeprune.model_fingerprint": saved.plan.fingerprint}
            for key in ("budget", "method", "align"):
                if saved.report.get(key) is not None:
                    metadata[f"edgeprune.{key}"] = str(saved.report[key])
            latency = saved.report.get("latency")
            if latency:  # the latency table's prediction, which `edgeprune check` sets against the measurement
                metadata |= {"edgeprune.latency_target": str(latency["target"]),
                             "edgeprune.latency_precision": str(latency.get("precision", "fp32")),
                             "edgeprune.latency_predicted_ms": repr(float(latency["predicted_ms"])),
                             "edgeprune.latency_dense_predicted_ms": repr(float(latency["dense_predicted_ms"]))}
        pre = saved.manifest.preprocess
        preprocess = Preprocess(tuple(pre["mean"]), tuple(pre["std"]), str(pre.get("source", "manifest"))) if pre else None
        shape = tuple(input_shape or saved.input_shape)
        kind = "pruned" if saved.plan is not None else "trained"
        return ExportSource(saved.model, saved.spec, shape, kind, metadata, preprocess, saved.manifest.classes)
    if path.exists():
        raise SpecError(
            f"SRC {src!r} is a file; give the folder written by `edgeprune prune` or a model spec "
            "(with --weights for a state_dict)"
        )
    try:
        spec = parse_spec(src)
    except SpecError:
        raise SpecError(
            f"SRC {src!r} does not exist and is not a model spec; give the folder written by "
            "`edgeprune prune`, or a spec like torchvision:resnet18, edgeprune:resnet20, "
            "package.module:function"
        ) from None
    model, shape = build_model(spec, input_shape, weights)
    return ExportSource(model, spec.text, tuple(shape), "spec", {"edgeprune.spec": spec.text})
