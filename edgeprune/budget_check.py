"""Budget checks: hold profile reports to a target's absolute and relative latency budgets.

Pure functions over report dicts (as written by ``edgeprune profile``) and a `Target`;
``edgeprune check`` is a thin layer over `check_budgets`.

A report with no applicable budget gets the verdict ``no budget``. That passes (exit 0)
with the note visible in the table, because a new model should not break CI before
anyone has measured it; ``strict=True`` (``--strict``) makes it a failure instead.

With ``ci_aware=True`` a budget is judged against the 95% confidence interval, not the
point estimate: ``pass`` when the whole interval is within the budget, ``FAIL`` when the
whole interval breaks it, and ``unreliable`` when the budget lies inside the interval (the
margin is smaller than the measurement's uncertainty). The interval of the median comes
from the report (``latency_ms.median_ci95``); that of a ratio to the baseline from a paired
bootstrap when both reports come from one interleaved loop (same ``interleaved.id``), else
from the two medians' intervals (`ratio_ci_from_cis`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Sequence

from edgeprune.errors import BudgetError
from edgeprune.profile.stats import bootstrap_median_ratio_ci, ratio_ci_from_cis
from edgeprune.profile.table import fmt_ms, format_table
from edgeprune.targets import Target

PASS, FAIL, NO_BUDGET, BASELINE, UNRELIABLE = "pass", "FAIL", "no budget", "baseline", "unreliable"

# Fields that must agree between a candidate and its baseline for a ratio to mean anything.
_SAME_SETUP = ("runtime", "runtime_version", "device", "threads", "precision", "batch")


@dataclass(frozen=True)
class Verdict:
    """One report held to its budgets."""

    model: str
    report: str
    median_ms: float
    median_ci95: tuple[float, float]
    budget_ms: float | None
    ratio: float | None
    max_ratio: float | None
    status: str  # pass | FAIL | no budget | baseline | unreliable (only with ci_aware)
    notes: tuple[str, ...] = ()
    ratio_ci95: tuple[float, float] | None = None
    predicted_ms: float | None = None  # the latency table's prediction for this model on the target

    @property
    def failed(self) -> bool:
        """A budget is clearly broken (an ``unreliable`` verdict is not, see `unreliable`)."""
        return self.status == FAIL

    @property
    def unreliable(self) -> bool:
        """The budget lies inside the 95% CI: neither a pass nor a fail at this many runs."""
        return self.status == UNRELIABLE

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "report": self.report,
            "median_ms": self.median_ms,
            "median_ci95": list(self.median_ci95),
            "budget_ms": self.budget_ms,
            "ratio": self.ratio,
            "max_ratio": self.max_ratio,
            "ratio_ci95": list(self.ratio_ci95) if self.ratio_ci95 is not None else None,
            "verdict": self.status,
            "predicted_ms": self.predicted_ms,
            "predicted_vs_measured": (self.predicted_ms / self.median_ms - 1.0) if self.predicted_ms else None,
            "notes": list(self.notes),
        }


def setup_differences(a: dict[str, Any], b: dict[str, Any]) -> list[str]:
    """Human-readable differences in how two reports were measured (empty when comparable)."""
    diffs = [f"{k} {a.get(k)!r} vs {b.get(k)!r}" for k in _SAME_SETUP if a.get(k) != b.get(k)]
    cpu_a, cpu_b = a.get("machine", {}).get("cpu"), b.get("machine", {}).get("cpu")
    if cpu_a != cpu_b:
        diffs.append(f"cpu {cpu_a!r} vs {cpu_b!r}")
    shapes_a = [i.get("shape") for i in a.get("model", {}).get("inputs", [])]
    shapes_b = [i.get("shape") for i in b.get("model", {}).get("inputs", [])]
    if shapes_a != shapes_b:
        diffs.append(f"input shapes {shapes_a} vs {shapes_b}")
    return diffs


def check_target_match(report: dict[str, Any], target: Target, source: str) -> list[str]:
    """BudgetError when ``report`` was measured on another target/settings; notes otherwise."""
    profiled_on = report.get("target")
    batch = target.profile.batch
    if batch is not None and report.get("batch") != batch:
        raise BudgetError(
            f"{source}: measured at batch {report.get('batch')!r}, but {target.name}'s budgets are for batch {batch}"
        )
    if profiled_on is not None:
        if profiled_on != target.name:
            raise BudgetError(
                f"{source}: profiled on target {profiled_on!r}, checked against {target.name!r}; "
                f"profile it with --target {target.name}"
            )
        return []
    settings = target.runtime.settings
    diffs = []
    if report.get("runtime") != target.runtime.name:
        diffs.append(f"runtime {report.get('runtime')!r} (target: {target.runtime.name!r})")
    threads = getattr(settings, "threads", None)
    if threads is not None and report.get("threads") != threads:
        diffs.append(f"threads {report.get('threads')!r} (target: {threads})")
    if diffs:
        raise BudgetError(f"{source}: measured with {', '.join(diffs)}; profile it with --target {target.name}")
    return ["profiled without --target (runtime and threads match)"]


def _same_report(a_path: str, a: dict[str, Any], b_path: str, b: dict[str, Any]) -> bool:
    try:
        if os.path.samefile(a_path, b_path):
            return True
    except OSError:
        pass
    return a == b


def interval_verdict(ci: Sequence[float], limit: float) -> str:
    """``pass`` if the whole interval is <= ``limit``, ``FAIL`` if all of it is above, else
    ``unreliable`` (the limit lies inside the interval)."""
    low, high = float(ci[0]), float(ci[1])
    if high <= limit:
        return PASS
    if low > limit:
        return FAIL
    return UNRELIABLE


def paired_samples(report: dict[str, Any], baseline: dict[str, Any]) -> tuple[list[float], list[float]] | None:
    """Both reports' ``samples_ms`` when they were timed in one interleaved loop (the same
    ``interleaved.id`` and as many samples: ``samples_ms[i]`` of both come from round i)."""
    a, b = report.get("samples_ms"), baseline.get("samples_ms")
    ia, ib = report.get("interleaved") or {}, baseline.get("interleaved") or {}
    if not a or not b or len(a) != len(b) or not ia.get("id") or ia.get("id") != ib.get("id"):
        return None
    return list(a), list(b)


def ratio_interval(report: dict[str, Any], baseline: dict[str, Any]) -> tuple[tuple[float, float], str] | None:
    """95% CI of ``median(report) / median(baseline)`` and how it was obtained, or None when
    the reports carry no usable interval."""
    pair = paired_samples(report, baseline)
    try:
        if pair is not None:
            return (bootstrap_median_ratio_ci(*pair, paired=True),
                    f"paired bootstrap over {len(pair[0])} interleaved rounds")
        lat, base = report["latency_ms"], baseline["latency_ms"]
        return (ratio_ci_from_cis(float(lat["median"]), lat["median_ci95"], float(base["median"]), base["median_ci95"]),
                "from the two medians' CIs; not measured interleaved")
    except (ValueError, KeyError, TypeError, IndexError):
        return None


def _combine(statuses: Sequence[str]) -> str:
    if FAIL in statuses:
        return FAIL
    return UNRELIABLE if UNRELIABLE in statuses else PASS


def check_budgets(
    reports: Sequence[tuple[str, dict[str, Any]]],
    target: Target,
    baseline: tuple[str, dict[str, Any]] | None = None,
    *,
    strict: bool = False,
    ci_aware: bool = False,
) -> list[Verdict]:
    """Hold each (path, report) to ``target``'s budgets.

    Absolute: ``budgets.latency_ms[model name]`` >= median. Relative (with ``baseline``
    and ``budgets.max_ratio``): median / baseline median <= max_ratio. A report fails if
    any applicable budget is broken; with none it is ``no budget`` (a failure if ``strict``).
    The baseline report, if also listed, is not held to the ratio.

    With ``ci_aware``, each budget is held to the 95% CI instead of the point estimate (see
    the module docstring): a report is ``FAIL`` if any budget is clearly broken, else
    ``unreliable`` if any budget lies inside its CI, else ``pass``. Without it (the default)
    verdicts are on the point estimates, and a budget inside the median's CI is only noted.

    Raises:
        BudgetError: a report measured on another target, or a baseline measured differently.
    """
    budgets = target.budgets
    base_median = None
    if baseline is not None:
        base_path, base_report = baseline
        check_target_match(base_report, target, base_path)
        base_median = float(base_report["latency_ms"]["median"])
        if budgets.max_ratio is None:
            raise BudgetError(f"--baseline given, but target {target.name!r} has no budgets.max_ratio")
    verdicts = []
    for path, report in reports:
        notes = list(check_target_match(report, target, path))
        model = report["model"]["name"]
        latency = report["latency_ms"]
        median = float(latency["median"])
        ci = (float(latency["median_ci95"][0]), float(latency["median_ci95"][1]))
        checks: list[str] = []
        predicted_ms = _prediction(report, target, median, notes)

        budget = budgets.latency_ms.get(model)
        if budget is not None:
            if ci_aware:
                checks.append(interval_verdict(ci, budget))
                if checks[-1] == UNRELIABLE:
                    notes.append(
                        f"budget {fmt_ms(budget)} ms lies inside the median's 95% CI [{fmt_ms(ci[0])}, {fmt_ms(ci[1])}] ms "
                        f"({report.get('runs', '?')} runs): the margin is smaller than the measurement's uncertainty"
                    )
            else:
                checks.append(PASS if median <= budget else FAIL)
                if ci[0] <= budget <= ci[1]:
                    notes.append(f"budget {fmt_ms(budget)} ms lies inside the median's 95% CI: within noise")

        ratio = ratio_ci = None
        is_baseline = baseline is not None and _same_report(path, report, *baseline)
        if base_median is not None and not is_baseline:
            diffs = setup_differences(report, baseline[1])  # type: ignore[index]
            if diffs:
                raise BudgetError(
                    f"{path} and baseline {baseline[0]} were measured differently: "  # type: ignore[index]
                    f"{'; '.join(diffs)}"
                )
            ratio = median / base_median
            found = ratio_interval(report, baseline[1])  # type: ignore[index]
            ratio_ci = found[0] if found else None
            if ci_aware and found is not None:
                checks.append(interval_verdict(ratio_ci, budgets.max_ratio))  # type: ignore[arg-type]
                if checks[-1] == UNRELIABLE:
                    notes.append(
                        f"max_ratio {budgets.max_ratio:.3f} lies inside the ratio's 95% CI "
                        f"[{ratio_ci[0]:.3f}, {ratio_ci[1]:.3f}] ({found[1]}): "  # type: ignore[index]
                        "the margin is smaller than the measurement's uncertainty"
                    )
            else:
                checks.append(PASS if ratio <= budgets.max_ratio else FAIL)  # type: ignore[operator]
                if ci_aware:
                    notes.append("no CI for the ratio (reports without usable intervals): judged on the point estimate")

        if checks:
            status = _combine(checks)
            if status == UNRELIABLE:
                notes.append("more runs narrow the CI: re-profile with more runs")
        elif is_baseline:
            status = BASELINE
        else:
            status = FAIL if strict else NO_BUDGET
            notes.append(
                f"no budget for model {model!r} on {target.name}"
                + ("" if baseline is not None or budgets.max_ratio is None else " (give --baseline for max_ratio)")
                + ("; --strict makes that a failure" if strict else "; not gated")
            )
        verdicts.append(
            Verdict(model, path, median, ci, budget, ratio,
                    budgets.max_ratio if ratio is not None else None, status, tuple(notes), ratio_ci, predicted_ms)
        )
    return verdicts


def _prediction(report: dict[str, Any], target: Target, median: float, notes: list[str]) -> float | None:
    """The latency table's prediction the profiled model carries (a prune to a latency budget),
    set against the measured median in a note; informative, never a verdict."""
    predicted = report.get("model", {}).get("predicted_latency")
    if not predicted:
        return None
    if predicted.get("target") != target.name:
        notes.append(f"the latency table predicted {fmt_ms(predicted['ms'])} ms on {predicted.get('target')}, "
                     f"not on {target.name}: not compared")
        return None
    ms = float(predicted["ms"])
    notes.append(f"the latency table predicted {fmt_ms(ms)} ms; measured {fmt_ms(median)} ms "
                 f"({100 * (ms / median - 1):+.1f}% predicted vs measured)")
    return ms


def format_verdicts(verdicts: Sequence[Verdict], target: Target) -> str:
    """The table ``edgeprune check`` prints, with notes underneath."""
    rows = []
    for v in verdicts:
        rows.append([
            v.model,
            f"{fmt_ms(v.median_ms)} [{fmt_ms(v.median_ci95[0])}, {fmt_ms(v.median_ci95[1])}]",
            fmt_ms(v.budget_ms) if v.budget_ms is not None else "-",
            f"{v.ratio:.3f}" if v.ratio is not None else "-",
            f"{v.max_ratio:.3f}" if v.max_ratio is not None else "-",
            v.status,
        ])
    table = format_table(["model", "median ms [95% CI]", "budget ms", "ratio", "max ratio", "verdict"], rows)
    notes = [f"  {v.model}: {n}" for v in verdicts for n in v.notes]
    failed = sum(v.failed for v in verdicts)
    unreliable = sum(v.unreliable for v in verdicts)
    summary = f"target {target.name}: {len(verdicts) - failed - unreliable} passed, {failed} failed"
    if unreliable:
        summary += f", {unreliable} unreliable (budget inside the 95% CI)"
    return "\n".join([table, *(["", "notes:", *notes] if notes else []), "", summary])


def read_check_input(path: str | os.PathLike) -> dict[str, Any]:
    """A profile report as ``edgeprune check`` takes it: readable JSON (ReportError naming the
    file), a known schema, and a latency that a budget can be held to (`validate_check_input`)."""
    from pathlib import Path

    from edgeprune.profile import load_report
    from edgeprune.profile.report import ReportError

    p = Path(path)
    try:
        report = load_report(p)
    except (UnicodeDecodeError, ValueError) as err:  # not text, or JSON that json.load refuses otherwise
        raise ReportError(f"{p}: not valid JSON ({type(err).__name__}: {err})") from None
    except RecursionError:
        raise ReportError(f"{p}: not valid JSON (nested too deeply)") from None
    validate_check_input(report, str(p))
    return report


def _finite_number(value: Any) -> bool:
    import math

    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def validate_check_input(report: dict[str, Any], source: str) -> None:
    """ReportError naming ``source`` and the field when a report cannot be held to a budget: an
    unknown ``schema``, a median that is not a finite positive number (NaN passes ``<= 0``), a
    ``median_ci95`` that is not two finite numbers low <= high, or a median outside its own CI."""
    from edgeprune.profile.report import SCHEMA, ReportError

    schema = report.get("schema")
    if schema is None:
        raise ReportError(f"{source}: schema: missing; `edgeprune check` reads {SCHEMA!r} reports (the JSON of "
                          "`edgeprune profile --json`)")
    if schema != SCHEMA:
        raise ReportError(f"{source}: schema: unknown report schema {schema!r}; `edgeprune check` reads {SCHEMA!r} "
                          "(the JSON of `edgeprune profile --json`)")
    lat = report["latency_ms"]
    if not isinstance(lat, dict):
        raise ReportError(f"{source}: latency_ms: must be an object, got {lat!r}")
    median = lat.get("median")
    if not _finite_number(median) or median <= 0:
        raise ReportError(f"{source}: latency_ms.median: must be a finite positive number of milliseconds, got {median!r}")
    for key in ("p90", "p99", "min", "mean"):
        if key in lat and lat[key] is not None and not _finite_number(lat[key]):
            raise ReportError(f"{source}: latency_ms.{key}: must be a finite number, got {lat[key]!r}")
    ci = lat.get("median_ci95")
    if not (isinstance(ci, (list, tuple)) and len(ci) == 2 and all(_finite_number(v) for v in ci)):
        raise ReportError(f"{source}: latency_ms.median_ci95: must be [low, high], two finite numbers, got {ci!r}")
    lo, hi = ci
    if lo > hi:
        raise ReportError(f"{source}: latency_ms.median_ci95: low {lo} is above high {hi}")
    if not lo <= median <= hi:
        raise ReportError(f"{source}: latency_ms.median {median} lies outside its own latency_ms.median_ci95 [{lo}, {hi}]; "
                          "the report was edited or is corrupt: profile the model again")
    for key, check in (("batch", lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 1),
                       ("runs", lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 1),
                       ("model.name", lambda v: isinstance(v, str) and v != "")):
        value = report
        for part in key.split("."):
            value = value.get(part) if isinstance(value, dict) else None
        if not check(value):
            raise ReportError(f"{source}: {key}: unexpected value {value!r}")
