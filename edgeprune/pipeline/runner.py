"""Run the stages in order, skipping those whose inputs have not changed.

Each stage's folder OUT/<stage>/ gets a ``stage.json`` when the stage finishes: the hash of
the config it depends on (its ``key``, which also covers the hashes of its input stages'
outputs) and the sha256 of every file it wrote. A stage is skipped when its key matches and
its files are intact; otherwise it (and so everything downstream, whose inputs change) runs
again. A stage that is running writes ``pending.json`` first: an interrupted training stage
keeps its checkpoint, and ``--resume`` continues it where it stopped.
"""

from __future__ import annotations

import datetime as _dt
import json
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from edgeprune.errors import EdgepruneError
from edgeprune.files.atomic import atomic_write, write_json
from edgeprune.pipeline import stages as S
from edgeprune.files.hashing import sha256_file, sha256_json
from edgeprune.pipeline.config import PipelineConfig

STAGE_SCHEMA = "edgeprune.pipeline.stage/1"
STAGE_FILE, PENDING_FILE, LOG_FILE = "stage.json", "pending.json", "pipeline.log.jsonl"
NOT_HASHED = {STAGE_FILE, PENDING_FILE, "checkpoint.pt"}


class PipelineError(EdgepruneError):
    """A pipeline run that cannot continue as asked."""


@dataclass(frozen=True)
class Stage:
    name: str
    run: Callable[[S.Context, Path], Any]
    deps: tuple[str, ...]
    sections: tuple[str, ...]
    extra: Callable[[PipelineConfig], Any] = lambda cfg: None
    training: bool = False


def _target_texts(cfg: PipelineConfig) -> dict[str, str]:
    return {n: sha256_file(Path(p)) if p and Path(p).is_file() else n for n, p in cfg.resolved["target_files"].items()}


def first_target_file(cfg: PipelineConfig) -> str | None:
    """The file of the first [targets] name: the device a quantized model is made for."""
    names = cfg.resolved.get("targets") or []
    return cfg.resolved["target_files"][names[0]] if names else None


def _quantize_extra(cfg: PipelineConfig) -> dict[str, Any]:
    """The calibration manifest's bytes, and reduce_range as decided for the first target (its
    ``[quantize] reduce_range``), else on this CPU (an ``auto`` run moved to a CPU that decides
    otherwise quantizes again)."""
    q = cfg["quantize"]
    reduce = None
    if q is not None and q["enabled"]:
        from edgeprune.quant.reduce_range import resolve_reduce_range

        reduce = resolve_reduce_range(q["reduce_range"], target=first_target_file(cfg)).enabled
    return {"calib": sha256_file(Path(cfg.resolved["calib"])) if cfg.resolved.get("calib") else None,
            "reduce_range": reduce}


STAGES: tuple[Stage, ...] = (
    Stage("dense", S.stage_dense, (), ("model", "data", "train"),
          lambda c: {"weights": sha256_file(Path(c.resolved["weights"])) if c.resolved.get("weights") else None},
          training=True),
    Stage("prune", S.stage_prune, ("dense",), ("prune", "data"),
          lambda c: {"align": c.resolved["align"], "spec": c["model"]["spec"],
                     "latency_table": sha256_file(Path(c.resolved["latency_table"]))
                     if c.resolved.get("latency_table") else None}, training=True),
    Stage("export", S.stage_export, ("dense", "prune"), ("export",),
          lambda c: {"mean": c["model"].get("mean"), "std": c["model"].get("std")}),
    Stage("quantize", S.stage_quantize, ("export",), ("quantize",), _quantize_extra),
    Stage("evaluate", S.stage_evaluate, ("export", "quantize"), ("data",)),
    Stage("profile", S.stage_profile, ("export", "quantize"), ("targets",),
          lambda c: {"targets": _target_texts(c), "name": c["model"]["name"]}),
    Stage("check", S.stage_check, ("profile", "evaluate"), ("budgets", "targets"), _target_texts),
)
TOTAL = len(STAGES) + 1  # + the report


def _outputs(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): sha256_file(p)
        for p in sorted(folder.rglob("*")) if p.is_file() and p.name not in NOT_HASHED and ".tmp" not in p.name
    }


def _intact(folder: Path, record: dict[str, Any]) -> bool:
    for rel, sha in record.get("outputs", {}).items():
        p = folder / rel
        if not p.is_file() or sha256_file(p) != sha:
            return False
    return True


def _read(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


@dataclass
class RunOutcome:
    complete: bool
    statuses: dict[str, dict[str, Any]]  # stage -> {"status": ran|skipped|stopped, "elapsed_s": ...}
    records: dict[str, dict[str, Any]]
    report: dict[str, Any] | None = None


def run_pipeline(
    cfg: PipelineConfig,
    out: str | Path,
    *,
    resume: bool = False,
    progress: bool = True,
    stop_after: dict[str, int] | None = None,
    echo: Callable[[str], None] = print,
) -> RunOutcome:
    """Run (or continue) the pipeline of ``cfg`` in ``out``; returns what ran and the report."""
    from edgeprune.files.staging import OutputError, OutputLock

    out = Path(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
        lock = OutputLock(out)
        lock.acquire()  # a second pipeline on this --out is refused, naming the holder
    except (OSError, OutputError) as err:
        raise PipelineError(f"--out {out}: {getattr(err, 'strerror', None) or err}") from None
    try:
        return _run_stages(cfg, out, resume=resume, progress=progress, stop_after=stop_after, echo=echo)
    finally:
        lock.release()


def _run_stages(cfg: PipelineConfig, out: Path, *, resume: bool, progress: bool,
                stop_after: dict[str, int] | None, echo: Callable[[str], None]) -> RunOutcome:
    """Each stage is built in ``OUT/.STAGE.partial/`` and swapped onto ``OUT/STAGE/`` only when
    complete (`edgeprune.files.staging.swap_in`): a failure, Ctrl-C or kill leaves the previous
    good stage in place; an interrupted training stage keeps its checkpoint there for --resume."""
    from edgeprune.files.staging import partial_dir, recover, swap_in

    ctx = S.Context(cfg, out, resume=resume, progress=progress, stop_after=dict(stop_after or {}), echo=echo)
    started = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    statuses: dict[str, dict[str, Any]] = {}
    records: dict[str, dict[str, Any]] = {}
    write_bytes_atomic(out / "config.toml", cfg.path.read_bytes())
    for i, stage in enumerate(STAGES, 1):
        final = out / stage.name
        recover(final)
        inputs = {d: records[d]["output_hash"] for d in stage.deps}
        key = sha256_json({"stage": stage.name, "config": {n: cfg.sections.get(n) for n in stage.sections},
                           "extra": stage.extra(cfg), "inputs": inputs})
        record = _read(final / STAGE_FILE)
        if record and record.get("key") == key and _intact(final, record):
            records[stage.name] = record
            ctx.results[stage.name] = record["result"]
            statuses[stage.name] = {"status": "skipped", "elapsed_s": 0.0}
            echo(f"[{i}/{TOTAL}] {stage.name} ... skipped (unchanged)")
            _log(out, started, stage.name, "skipped", 0.0)
            continue
        folder = partial_dir(final)  # where this stage is built
        pending = _read(folder / PENDING_FILE)
        same_run = pending is not None and pending.get("key") == key
        continuing = False
        if folder.exists():
            if same_run and resume:
                continuing = True
            elif same_run and stage.training and (folder / "checkpoint.pt").is_file():
                raise PipelineError(
                    f"{folder} holds an interrupted {stage.name} run (checkpoint.pt); pass --resume to continue "
                    f"it, or delete {folder} to start that stage over"
                )
            else:
                shutil.rmtree(folder)  # a build that never finished; the published stage is untouched
        folder.mkdir(parents=True, exist_ok=True)
        if not continuing:
            write_json(folder / PENDING_FILE, {"stage": stage.name, "key": key, "started": started})
        echo(f"[{i}/{TOTAL}] {stage.name} ... {'resuming' if continuing else 'running'}")
        ctx.resume = continuing
        ctx.building[stage.name] = folder
        t0 = time.perf_counter()
        try:
            result = stage.run(ctx, folder)
        except KeyboardInterrupt:
            kept = stage.training and (folder / "checkpoint.pt").is_file()
            echo(f"[{i}/{TOTAL}] {stage.name} ... interrupted"
                 + ("; its last epoch checkpoint is kept: continue with --resume" if kept else "; it will run again")
                 + (f"; {final} still holds the previous result" if final.exists() else ""))
            _log(out, started, stage.name, "interrupted", round(time.perf_counter() - t0, 3))
            raise
        finally:
            ctx.building.pop(stage.name, None)
        elapsed = round(time.perf_counter() - t0, 3)
        if result is None:
            statuses[stage.name] = {"status": "stopped", "elapsed_s": elapsed}
            _log(out, started, stage.name, "stopped", elapsed)
            echo(f"[{i}/{TOTAL}] {stage.name} ... stopped after epoch {ctx.stop_after.get(stage.name)} "
                 f"({elapsed:.1f} s); continue with --resume")
            return RunOutcome(False, statuses, records)
        (folder / PENDING_FILE).unlink(missing_ok=True)
        outputs = _outputs(folder)
        output_hash = sha256_json({"outputs": outputs, "result": result if not outputs else None})
        record = {"schema": STAGE_SCHEMA, "stage": stage.name, "key": key, "inputs": inputs,
                  "config": {n: cfg.sections.get(n) for n in stage.sections}, "outputs": outputs,
                  "output_hash": output_hash, "result": result, "elapsed_s": elapsed,
                  "resumed": continuing, "finished": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")}
        write_json(folder / STAGE_FILE, record)
        swap_in(folder, final)
        records[stage.name] = record
        ctx.results[stage.name] = result
        statuses[stage.name] = {"status": "resumed" if continuing else "ran", "elapsed_s": elapsed}
        _log(out, started, stage.name, statuses[stage.name]["status"], elapsed)
        echo(f"[{i}/{TOTAL}] {stage.name} ... done ({elapsed:.1f} s)")

    from edgeprune.pipeline.report import write_report

    t0 = time.perf_counter()
    report = write_report(ctx, records, statuses)
    elapsed = round(time.perf_counter() - t0, 3)
    statuses["report"] = {"status": "ran", "elapsed_s": elapsed}
    _log(out, started, "report", "ran", elapsed)
    echo(f"[{TOTAL}/{TOTAL}] report ... done ({elapsed:.1f} s)")
    return RunOutcome(True, statuses, records, report)


def write_bytes_atomic(path: Path, data: bytes) -> None:
    atomic_write(path, lambda tmp: Path(tmp).write_bytes(data))


def _log(out: Path, started: str, stage: str, status: str, elapsed: float) -> None:
    line = json.dumps({"run": started, "stage": stage, "status": status, "elapsed_s": elapsed})
    with open(out / LOG_FILE, "a") as f:
        f.write(line + "\n")
