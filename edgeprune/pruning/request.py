"""`PruneRequest`: everything one prune job needs, as one frozen config, validated in one place.

`edgeprune prune` builds it from its options and the pipeline from its ``[prune]`` section;
both hand it to `edgeprune.pruning.job.run_prune`. ``problems()`` is the only place a prune
setting is checked; it names each field the way the caller's user wrote it (``--epochs`` on
the command line, ``prune.epochs`` in a pipeline config), so the same check reads right in both.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Callable

from edgeprune.errors import EdgepruneError

DEFAULT_TARGET = "x86-ort-1t"
DEFAULT_MIN_KEEP = 0.2
LR_FROM_TRAINED = 0.01  # fine-tuning / pruning while training from trained weights
LR_FROM_SCRATCH = 0.1


class RequestError(EdgepruneError):
    """A prune request with settings that cannot run; one line per problem."""


Names = Callable[[str], str]  # request field -> how the user spells it ("--epochs", "prune.epochs")


def cli_name(name: str) -> str:
    """How `edgeprune prune` spells a request field."""
    special = {"model": "MODEL", "options.consistency_lambda": "--lambda", "options": "method options"}
    return special.get(name, "--" + name.replace("_", "-"))


@dataclass(frozen=True)
class PruneRequest:
    """One prune job: the model, the method and its budget, the data and schedule, where to write.

    ``weights_trained`` says whether ``weights`` are trained (default learning rate 0.01) or a
    random initialisation saved to a file (0.1, as without weights). ``options`` are the
    method's options as sorted (name, value) pairs (see `method_options`).

    ``from_plan`` + ``scratch`` (``"E"`` or ``"B"``): instead of pruning, train the slim
    architecture of that plan (a plan.json or a prune folder) from random initialisation for
    ``epochs`` (the dense model's) or the FLOPs-equivalent (`edgeprune.pruning.scratch`); then
    ``model`` may be None (the plan's spec) and ``budget`` is empty."""

    model: str
    budget: str
    out: str
    method: str = "l1"
    options: tuple[tuple[str, Any], ...] = ()
    weights: str | None = None
    weights_trained: bool = True
    input_shape: tuple[int, ...] | None = None
    min_keep: float = DEFAULT_MIN_KEEP
    align: int | str = "auto"
    target: str = DEFAULT_TARGET
    data: str | None = None
    data_root: str | None = None
    augment: str = "auto"
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    train_subset: int | None = None
    test_subset: int | None = None
    eval_batch_size: int = 500
    epochs: int | None = None
    finetune_epochs: int = 0
    lr: float | None = None
    batch_size: int = 128
    seed: int = 0
    from_plan: str | None = None
    scratch: str | None = None
    latency_table: str | None = None
    _cache: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def build(cls, *, options: dict[str, Any] | None = None, **values: Any) -> "PruneRequest":
        """A request from plain values (``options`` as a dict, ``input_shape`` as a list)."""
        if values.get("input_shape") is not None:
            values["input_shape"] = tuple(int(d) for d in values["input_shape"])
        values.setdefault("model", None)
        values.setdefault("budget", None)
        if isinstance(values.get("scratch"), str):
            values["scratch"] = values["scratch"].strip().upper()
        if values.get("from_plan") is not None:
            values["from_plan"] = str(values["from_plan"])
            if values.get("model") is None:  # taken from the plan; problems() names a bad plan
                plan = _plan_or_none(values["from_plan"])
                if plan is not None:
                    values["model"] = plan.spec
            if values.get("input_shape") is None:
                plan = _plan_or_none(values["from_plan"])
                if plan is not None:
                    values["input_shape"] = tuple(plan.input_shape)
        if values.get("budget") is None and values.get("from_plan") is not None:
            values["budget"] = ""
        for key in ("mean", "std"):
            if values.get(key) is not None:
                values[key] = tuple(values[key])
        return cls(options=tuple(sorted((options or {}).items())), **values)

    @property
    def method_options(self) -> dict[str, Any]:
        return dict(self.options)

    def to_json(self) -> dict[str, Any]:
        """The settings that made a prune folder (its manifest's ``settings``)."""
        data = {f.name: getattr(self, f.name) for f in fields(self) if not f.name.startswith("_")}
        data["options"] = self.method_options
        for key in ("input_shape", "mean", "std"):
            data[key] = list(getattr(self, key)) if getattr(self, key) is not None else None
        return data

    # ---- what the job needs, resolved once -------------------------------------------------

    @property
    def training_time(self) -> bool:
        """Whether the method prunes while training (needs data and epochs)."""
        from edgeprune.methods import get_method

        return bool(getattr(get_method(self.method, **self.method_options), "training_time", False))

    @property
    def unstructured(self) -> bool:
        """Whether the method zeroes single weights (han: a sparsity= budget, no channel removed)."""
        from edgeprune.methods import get_method

        return bool(getattr(get_method(self.method, **self.method_options), "unstructured", False))

    @property
    def needs_data(self) -> bool:
        """Whether the method samples the training data even when nothing trains (ThiNet, He 2017)."""
        from edgeprune.methods import get_method

        return bool(getattr(get_method(self.method, **self.method_options), "needs_data", False))

    @property
    def trains(self) -> bool:
        """Whether the job trains at all (a training-time method, fine-tuning, or Scratch-E/B)."""
        return self.scratch is not None or self.training_time or self.finetune_epochs > 0

    def parsed_budget(self):
        import dataclasses

        from edgeprune.pruning.budget import Budget

        return dataclasses.replace(Budget.parse(self.budget), min_keep=self.min_keep)

    def resolved_align(self) -> int:
        """``auto`` -> the target's alignment (with a latency table: the table's target's)."""
        if self.align != "auto":
            return int(self.align)
        key = ("align", self.align_target)
        if key not in self._cache:
            from edgeprune.targets import load_target

            self._cache[key] = load_target(key[1]).align
        return self._cache[key]

    @property
    def align_target(self) -> str:
        """The target ``align="auto"`` resolves against: the latency table's, else ``target``."""
        if self.latency_table is not None:
            import json

            try:
                return str(json.loads(Path(self.latency_table).read_text(encoding="utf-8"))["target"])
            except (OSError, ValueError, KeyError, TypeError):
                pass  # problems() says what is wrong with the table
        return self.target

    @property
    def learning_rate(self) -> float:
        """``lr``, or the default: 0.01 from trained weights, 0.1 from scratch."""
        if self.lr is not None:
            return self.lr
        return LR_FROM_TRAINED if self.weights is not None and self.weights_trained else LR_FROM_SCRATCH

    def train_config(self):
        from edgeprune.train import TrainConfig

        epochs = self.epochs if self.training_time else self.finetune_epochs
        return TrainConfig(epochs=epochs, lr=self.learning_rate, batch_size=self.batch_size, seed=self.seed,
                           eval_batch_size=self.eval_batch_size)

    # ---- validation --------------------------------------------------------------------------

    def _latency_problems(self, bad, names: Names, training_time) -> None:
        """A latency= / latency_ms= budget needs a latency table; a table must be a file."""
        from edgeprune.pruning.budget import LATENCY, Budget

        try:
            kind = Budget.parse(self.budget).kind if self.budget else None
        except EdgepruneError:
            return  # said under budget
        if kind in LATENCY and self.latency_table is None:
            bad("latency_table", f"{names('budget')} {self.budget} is a latency budget: it needs the target's latency "
                f"table ({names('latency_table')} FILE; build one with: edgeprune latency-table MODEL --target T "
                "--out FILE)")
        if self.latency_table is not None:
            if not Path(self.latency_table).is_file():
                bad("latency_table", f"no such file: {self.latency_table}")
            elif training_time is not None and self.unstructured:
                bad("latency_table", f"method {self.method} removes no channel: a latency table has nothing to allocate")

    def problems(self, names: Names = cli_name) -> list[tuple[str, str]]:
        """Every setting that cannot run, as (field, message); the message names fields with
        ``names``. Cheap: nothing is built or read but the method registry and target files."""
        from edgeprune.methods import available_methods, method_options

        out: list[tuple[str, str]] = []

        def bad(name: str, message: str) -> None:
            out.append((name, message))

        if self.from_plan is not None or self.scratch is not None:
            self._scratch_problems(bad, names)
        else:
            if self.model is None:
                bad("model", "missing: name the model to prune")
            if not self.budget:
                bad("budget", "missing: e.g. flops=0.5, params=0.5 or ratio=0.3")
            training_time = None
            try:
                from edgeprune.models.spec import parse_spec

                if self.model is not None:
                    parse_spec(self.model)
            except EdgepruneError as err:
                bad("model", str(err))
            if self.method not in available_methods():
                bad("method", f"unknown method {self.method!r}; available: {', '.join(available_methods())}")
            else:
                allowed = method_options(self.method)
                unknown = sorted(set(self.method_options) - set(allowed))
                for key in unknown:
                    owners = [m for m in available_methods() if key in method_options(m)]
                    bad(f"options.{key}", f"method {self.method!r} has no such option; "
                        + (f"it is only valid with {names('method')} {' or '.join(owners)}; " if owners else "")
                        + (f"allowed: {', '.join(allowed)}" if allowed else "it takes no options"))
                if not unknown:
                    try:
                        training_time = self.training_time
                    except (TypeError, ValueError, EdgepruneError) as err:
                        bad("options", str(err))
            try:
                from edgeprune.pruning.budget import Budget

                if self.budget:
                    kind = Budget.parse(self.budget).kind
                    unstructured = training_time is not None and self.unstructured
                    if kind == "sparsity" and training_time is not None and not unstructured:
                        bad("budget", f"sparsity= zeroes single weights, which only an unstructured method does "
                            f"({names('method')} han); {self.method} removes channels: use flops=, params= or ratio=")
                    elif unstructured and kind != "sparsity":
                        bad("budget", f"method {self.method} zeroes single weights and removes no channel: "
                            "use sparsity=S (the fraction of conv/linear weights zeroed, e.g. sparsity=0.9)")
            except EdgepruneError as err:
                bad("budget", str(err))
            self._latency_problems(bad, names, training_time)
            if not 0.0 <= self.min_keep <= 1.0:
                bad("min_keep", f"must be a fraction in [0, 1], got {self.min_keep}")
            if self.align == "auto":
                try:
                    self.resolved_align()
                except EdgepruneError as err:
                    bad("target", str(err))
            elif isinstance(self.align, bool) or not isinstance(self.align, int) or self.align < 1:
                bad("align", f"must be a positive integer or 'auto', got {self.align!r}")
            if training_time:
                missing = [n for n, v in (("epochs", self.epochs), ("data", self.data)) if v is None]
                if missing:
                    bad(missing[0], f"method {self.method} prunes while training: pass {names('data')} and {names('epochs')}")
                if self.finetune_epochs:
                    bad("finetune_epochs", f"is for one-shot methods; {self.method} trains with its masks for {names('epochs')}")
            elif training_time is False:
                if self.epochs is not None:
                    bad("epochs", f"trains a training-time method; to fine-tune after {self.method} use "
                        f"{names('finetune_epochs')}")
                if self.finetune_epochs and self.data is None:
                    bad("finetune_epochs", f"fine-tuning needs {names('data')}")
                elif self.data is None and self.needs_data:
                    bad("data", f"method {self.method} samples the training data: pass {names('data')}")
        for key in ("epochs", "lr", "batch_size"):
            value = getattr(self, key)
            if value is not None and not value > 0:
                bad(key, f"must be positive, got {value}")
        if self.batch_size == 1:
            bad("batch_size", "must be at least 2 (BatchNorm)")
        if self.finetune_epochs < 0:
            bad("finetune_epochs", f"must be >= 0, got {self.finetune_epochs}")
        from edgeprune.data import AUGMENTS

        if self.augment not in AUGMENTS:
            bad("augment", f"must be one of {', '.join(AUGMENTS)}, got {self.augment!r}")
        if (self.mean is None) != (self.std is None):
            bad("mean" if self.mean is None else "std", f"give both {names('mean')} and {names('std')}, or neither")
        elif self.mean is not None:
            if len(self.mean) != len(self.std):
                bad("std", f"has {len(self.std)} values but {names('mean')} has {len(self.mean)}")
            if any(not v > 0 for v in self.std):
                bad("std", f"every value must be positive, got {list(self.std)}")
        for key, low in (("train_subset", 2), ("test_subset", 1), ("eval_batch_size", 1)):
            value = getattr(self, key)
            if value is not None and value < low:
                bad(key, f"must be at least {low}, got {value}")
        return out

    def _scratch_problems(self, bad: Callable[[str, str], None], names: Names) -> None:
        """The settings of Scratch-E/B (``from_plan`` + ``scratch``)."""
        from pathlib import Path

        from edgeprune.pruning.scratch import MODES, plan_file

        what = f"{names('scratch')} trains the plan's architecture from random initialisation"
        if self.latency_table is not None:
            bad("latency_table", f"is not used with {names('from_plan')}: the plan fixes the widths")
        if self.scratch is None:
            bad("from_plan", f"needs {names('scratch')} E (the dense model's epochs) or B (the same training FLOPs)")
        elif self.scratch not in MODES:
            bad("scratch", f"must be E (the dense model's epochs) or B (the same training FLOPs), got {self.scratch!r}")
        plan = None
        if self.from_plan is None:
            bad("scratch", f"needs {names('from_plan')}: the plan.json (or prune folder) whose architecture to train")
        else:
            try:
                plan = _load_plan(self.from_plan)
            except EdgepruneError as err:
                bad("from_plan", str(err))
            path = plan_file(self.from_plan).resolve()
            out = Path(self.out).resolve()
            if path.parent == out:
                bad("from_plan", f"lies in {names('out')} {self.out}, which this job rewrites; choose another {names('out')}")
        if self.model is None:
            if plan is None and self.from_plan is not None:
                bad("model", f"missing, and {names('from_plan')} names no readable plan to take it from")
        else:
            try:
                from edgeprune.models.spec import parse_spec

                spec = parse_spec(self.model)
                if plan is not None and parse_spec(plan.spec) != spec:
                    bad("model", f"{self.model} is not the model of {names('from_plan')} {self.from_plan} "
                        f"({plan.spec}); give that model, or omit {names('model')} to take it from the plan")
            except EdgepruneError as err:
                bad("model", str(err))
        if plan is not None and self.input_shape is not None and tuple(self.input_shape) != tuple(plan.input_shape):
            bad("input_shape", f"{list(self.input_shape)} is not the input shape of {names('from_plan')} "
                f"{self.from_plan} ({list(plan.input_shape)}); omit it to take the plan's")
        missing = [n for n, v in (("data", self.data), ("epochs", self.epochs)) if v is None]
        if missing:
            bad(missing[0], f"{what}: pass {names('data')} and {names('epochs')} (the dense model's epochs)")
        if self.weights is not None:
            bad("weights", f"{what}; it inherits no weights: drop {names('weights')}")
        if self.budget:
            bad("budget", f"is not used with {names('from_plan')}: the plan fixes the architecture")
        if self.options:
            bad("options", f"are method options; {names('scratch')} runs no pruning method")
        if self.finetune_epochs:
            bad("finetune_epochs", f"is for one-shot methods; {what} for {names('epochs')}")

    def check(self, names: Names = cli_name) -> None:
        """RequestError listing every problem (``NAME: message`` per line)."""
        found = self.problems(names)
        if found:
            raise RequestError("\n".join(f"{names(name)}: {message}" for name, message in found))


def _load_plan(from_plan: str):
    from edgeprune.pruning.scratch import load_source_plan

    return load_source_plan(from_plan)


def _plan_or_none(from_plan: str):
    """The plan ``from_plan`` names, or None if it cannot be read (``problems()`` says why)."""
    try:
        return _load_plan(from_plan)
    except EdgepruneError:
        return None
