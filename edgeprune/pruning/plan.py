"""PruningPlan: per channel group, the root channel indices to keep. Plain JSON, versioned.

    {
      "schema": "edgeprune.plan/1",
      "model": {"spec": "torchvision:resnet18", "input_shape": [1, 3, 224, 224],
                "fingerprint": "sha256 of module names, types and parameter shapes"},
      "groups": [{"root": "conv1", "size": 64, "kept": [0, 3, ...]}, ...]
    }

Every prunable group of the model appears once; a group left whole lists all its indices.
A depth-pruning method (sss) adds ``"removed_blocks": ["layer1.1", ...]``: residual blocks
(module names) that the slim model replaces by their identity shortcut
(`edgeprune.pruning.depth`). The field is optional: a plan without it removes no block.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from edgeprune.errors import PlanError
from edgeprune.files.atomic import atomic_write

SCHEMA = "edgeprune.plan/1"


@dataclass(frozen=True)
class GroupPlan:
    root: str
    size: int
    kept: tuple[int, ...]

    @property
    def pruned(self) -> tuple[int, ...]:
        keep = set(self.kept)
        return tuple(i for i in range(self.size) if i not in keep)


@dataclass(frozen=True)
class PruningPlan:
    spec: str
    input_shape: tuple[int, ...]
    fingerprint: str
    groups: tuple[GroupPlan, ...]
    removed_blocks: tuple[str, ...] = ()  # residual blocks replaced by their shortcut

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "schema": SCHEMA,
            "model": {
                "spec": self.spec,
                "input_shape": list(self.input_shape),
                "fingerprint": self.fingerprint,
            },
        }
        if self.removed_blocks:  # written only when blocks are removed: other plans stay as they were
            data["removed_blocks"] = list(self.removed_blocks)
        data["groups"] = [{"root": g.root, "size": g.size, "kept": list(g.kept)} for g in self.groups]
        return data

    @classmethod
    def from_json(cls, data: Any, where: str = "plan") -> "PruningPlan":
        """Validate and parse; errors name the field and what is allowed."""

        def need(cond: bool, msg: str) -> None:
            if not cond:
                raise PlanError(f"{where}: {msg}")

        need(isinstance(data, dict), "must be a JSON object")
        need(data.get("schema") == SCHEMA, f"'schema' must be {SCHEMA!r}, got {data.get('schema')!r}")
        model = data.get("model")
        need(isinstance(model, dict), "'model' must be an object with spec, input_shape, fingerprint")
        need(isinstance(model.get("spec"), str), "'model.spec' must be a string")
        shape = model.get("input_shape")
        need(
            isinstance(shape, list) and len(shape) >= 2 and all(isinstance(d, int) and d > 0 for d in shape),
            f"'model.input_shape' must be a list of positive integers, got {shape!r}",
        )
        need(isinstance(model.get("fingerprint"), str), "'model.fingerprint' must be a string")
        groups = data.get("groups")
        need(isinstance(groups, list), "'groups' must be a list")
        parsed = []
        for i, g in enumerate(groups):
            at = f"groups[{i}]"
            need(isinstance(g, dict), f"{at} must be an object with root, size, kept")
            need(isinstance(g.get("root"), str), f"{at}.root must be a module name")
            size = g.get("size")
            need(isinstance(size, int) and not isinstance(size, bool) and size > 0, f"{at}.size must be a positive integer")
            kept = g.get("kept")
            need(isinstance(kept, list) and all(isinstance(k, int) and not isinstance(k, bool) for k in kept),
                 f"{at}.kept must be a list of integers (channel indices)")
            need(len(kept) > 0, f"{at}.kept is empty: a group cannot be pruned to zero channels")
            need(len(set(kept)) == len(kept), f"{at}.kept has duplicate indices")
            need(all(0 <= k < size for k in kept), f"{at}.kept has indices outside [0, {size})")
            parsed.append(GroupPlan(g["root"], size, tuple(sorted(kept))))
        removed = data.get("removed_blocks", [])
        need(isinstance(removed, list) and all(isinstance(b, str) and b for b in removed),
             f"'removed_blocks' must be a list of module names (residual blocks), got {removed!r}")
        need(len(set(removed)) == len(removed), "'removed_blocks' names a block twice")
        return cls(model["spec"], tuple(shape), model["fingerprint"], tuple(parsed), tuple(removed))

    def save(self, path: str | Path) -> Path:
        """Write atomically; one group per line so that a plan diffs and reads well."""
        data = self.to_json()
        groups = ",\n".join("    " + json.dumps(g) for g in data.pop("groups"))
        head = json.dumps(data, indent=2)[:-2]  # drop the closing "\n}"
        text = f"{head},\n  \"groups\": [\n{groups}\n  ]\n}}\n"
        return atomic_write(path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))

    @classmethod
    def load(cls, path: str | Path) -> "PruningPlan":
        path = Path(path)
        if not path.is_file():
            raise PlanError(f"plan file {str(path)!r} does not exist")
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise PlanError(f"{path}: not valid JSON ({err})") from None
        return cls.from_json(data, where=str(path))

    @property
    def widths(self) -> tuple[int, ...]:
        return tuple(len(g.kept) for g in self.groups)


def fingerprint(model) -> str:
    """A hash of the model's structure: module names, types and parameter/buffer shapes."""
    h = hashlib.sha256()
    for name, module in model.named_modules():
        h.update(f"{name}:{type(module).__name__};".encode())
    for name, tensor in model.state_dict().items():
        h.update(f"{name}:{tuple(tensor.shape)};".encode())
    return h.hexdigest()[:16]


def make_plan(spec: str, input_shape: Sequence[int], model, graph, kept: Sequence[Sequence[int]]) -> PruningPlan:
    """Build a plan from kept indices, one list per prunable group of ``graph``."""
    groups = tuple(
        GroupPlan(g.root, g.size, tuple(sorted(int(i) for i in k))) for g, k in zip(graph.prunable, kept)
    )
    return PruningPlan(spec, tuple(input_shape), fingerprint(model), groups)
