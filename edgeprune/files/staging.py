"""Build an artifact folder beside its destination and swap it in only when complete.

    with Staging(out) as stage:               # locks OUT, builds in .OUT.partial/ beside it
        ... write files into stage.path ...
        stage.publish(["model.onnx", ...], marker="manifest.json")

What a reader of ``out`` can see is the previous complete folder or the new complete one, never
a mix, whatever happens (an exception, Ctrl-C, kill -9, a full disk):

- The new folder is built in ``.OUT.partial/`` (a fixed name, so a training job interrupted
  there resumes from its checkpoint). A failure leaves ``out`` untouched.
- Publishing swaps the two folders in one ``renameat2(RENAME_EXCHANGE)`` on Linux; elsewhere
  (or on a filesystem without it) ``out`` is first renamed to ``.OUT.old/`` and the new folder
  renamed onto ``out``; `recover()`, run by every later Staging and by the readers, puts
  ``.OUT.old/`` back if a crash fell between the two renames.
- A folder that is not an edgeprune artifact (no manifest.json or stage.json) but holds files
  is never swapped away: the new files are moved in one by one, the marker last.

``out`` is locked for the duration (`OutputLock`): a second writer is refused with the holder's
pid, command and start time; the lock of a process that died is detected and taken over.

Each file-system publish step calls `edgeprune.files.faults.publish_step`, the hook the
fault-injection tests kill the process at.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import json
import os
import shutil
import socket
import sys
import time
from pathlib import Path
from types import TracebackType
from typing import Any, Sequence

from edgeprune.errors import EdgepruneError
from edgeprune.files.faults import publish_step

MARKERS = ("manifest.json", "stage.json")  # a folder holding one of these is an edgeprune artifact
TRANSIENT = ("checkpoint.pt", "pending.json")  # a run's own working files: never carried over


class OutputError(EdgepruneError):
    """An output folder cannot be used (locked by another run, not a folder, not writable)."""


def partial_dir(out: str | os.PathLike) -> Path:
    out = Path(out).absolute()
    return out.parent / f".{out.name}.partial"


def _old_dir(out: Path) -> Path:
    return out.parent / f".{out.name}.old"


def lock_path(out: str | os.PathLike) -> Path:
    out = Path(out).absolute()
    return out.parent / f".{out.name}.lock"


# ---- the lock ---------------------------------------------------------------------------------


def _process_start(pid: int) -> str | None:
    """The start time of ``pid`` (Linux /proc; None elsewhere), to tell a reused pid apart."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class OutputLock:
    """An exclusive lock on an output folder: ``.OUT.lock`` beside it, holding the owner's pid.

    Re-entrant within one process (a pipeline holds its --out while its stages build)."""

    _held: dict[Path, int] = {}  # lock path -> depth, in this process

    def __init__(self, out: str | os.PathLike) -> None:
        self.out = Path(out).absolute()
        self.path = lock_path(self.out)

    def __enter__(self) -> "OutputLock":
        self.acquire()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.release()

    def acquire(self) -> None:
        if self._held.get(self.path):
            self._held[self.path] += 1
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise OutputError(f"cannot create the folder of {self.out}: {err.strerror or err}") from None
        me = {"pid": os.getpid(), "host": socket.gethostname(), "start": _process_start(os.getpid()),
              "since": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "command": " ".join(sys.argv)[:300]}
        for _ in range(3):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                holder = self._holder()
                if holder is not None and not self._stale(holder):
                    raise OutputError(
                        f"{self.out} is in use by another edgeprune run (pid {holder.get('pid')} on "
                        f"{holder.get('host')}, since {holder.get('since')}: {holder.get('command')!r}); wait for "
                        f"it to finish, or use another --out. If that process is gone, delete {self.path}"
                    ) from None
                self.path.unlink(missing_ok=True)  # a dead process's lock (or an unreadable one)
                continue
            except OSError as err:
                raise OutputError(f"cannot write into the folder of {self.out}: {err.strerror or err}") from None
            with os.fdopen(fd, "w") as f:
                json.dump(me, f)
            self._held[self.path] = 1
            return
        raise OutputError(f"could not take the lock {self.path}: another process keeps taking it")

    def release(self) -> None:
        depth = self._held.get(self.path, 0)
        if depth > 1:
            self._held[self.path] = depth - 1
            return
        self._held.pop(self.path, None)
        holder = self._holder()
        if holder is not None and holder.get("pid") == os.getpid():
            self.path.unlink(missing_ok=True)

    def _holder(self) -> dict[str, Any] | None:
        try:
            data = json.loads(self.path.read_text())
            return data if isinstance(data, dict) else None
        except (OSError, ValueError):
            return None  # being written right now, or damaged: judged by age below

    def _stale(self, holder: dict[str, Any]) -> bool:
        pid = holder.get("pid")
        if holder.get("host") != socket.gethostname() or not isinstance(pid, int):
            return False  # another machine's lock (shared filesystem): never taken over
        if not _alive(pid):
            return True
        start = holder.get("start")
        return start is not None and _process_start(pid) not in (None, start)  # the pid was reused


# ---- swapping a folder in --------------------------------------------------------------------


def _renameat2_exchange():
    """libc's renameat2 with RENAME_EXCHANGE, or None where it does not exist."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        fn = libc.renameat2
    except (OSError, AttributeError):
        return None
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    fn.restype = ctypes.c_int
    return fn


_EXCHANGE = _renameat2_exchange()
AT_FDCWD, RENAME_EXCHANGE = -100, 2


def _exchange(a: Path, b: Path) -> bool:
    """Swap two existing paths atomically; False where the system cannot."""
    if _EXCHANGE is None:
        return False
    if _EXCHANGE(AT_FDCWD, os.fsencode(a), AT_FDCWD, os.fsencode(b), RENAME_EXCHANGE) == 0:
        return True
    err = ctypes.get_errno()
    if err in (22, 38, 95):  # EINVAL, ENOSYS, EOPNOTSUPP: not on this filesystem or kernel
        return False
    raise OSError(err, os.strerror(err), str(a))


def recover(out: str | os.PathLike, *, partial: bool = True) -> None:
    """Finish or undo a swap a crash interrupted: ``.OUT.old/`` is put back when ``out`` is
    missing, and removed when ``out`` is there (the swap had completed); a complete folder left
    at ``.OUT.partial/`` with no run's working files (checkpoint, pending) is removed."""
    out = Path(out).absolute()
    old = _old_dir(out)
    if old.exists():
        if out.exists():
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.rename(old, out)
    build = partial_dir(out)
    if partial and out.exists() and build.is_dir() and is_artifact(build) and not any(
            (build / name).exists() for name in TRANSIENT):
        # the previous folder, exchanged out by a swap that was killed before removing it (or a
        # finished build killed before its swap: never published, so the result is the previous)
        shutil.rmtree(build, ignore_errors=True)


def is_artifact(folder: Path) -> bool:
    return any((folder / m).is_file() for m in MARKERS)


def swap_in(build: Path, out: Path) -> None:
    """Make ``build`` the folder ``out`` (which may exist); the previous one is removed."""
    out = out.absolute()
    recover(out, partial=False)  # (the build being published is the partial folder)
    if not out.exists():
        publish_step(f"rename {build.name} -> {out.name}")
        os.rename(build, out)
        return
    publish_step(f"swap {build.name} <-> {out.name}")
    if _exchange(build, out):
        publish_step(f"remove previous {out.name}")
        shutil.rmtree(build, ignore_errors=True)  # now the previous folder
        return
    old = _old_dir(out)
    os.rename(out, old)
    publish_step(f"rename {build.name} -> {out.name} (previous kept as {old.name})")
    os.rename(build, out)
    publish_step(f"remove previous {out.name}")
    shutil.rmtree(old, ignore_errors=True)


def _listed(folder: Path) -> set[str]:
    """Top-level names the artifact markers in ``folder`` list (a manifest's ``files``, a
    pipeline stage's ``outputs``), the markers themselves and leftovers of a build."""
    names = set(MARKERS) | set(TRANSIENT)
    for marker, key in (("manifest.json", "files"), ("stage.json", "outputs")):
        try:
            listed = json.loads((folder / marker).read_text(encoding="utf-8")).get(key) or {}
        except (OSError, ValueError, AttributeError):
            continue
        names |= {Path(n).parts[0] for n in listed if isinstance(n, str) and n}
    return names


def _carry_over_foreign(out: Path, build: Path, published: set[str]) -> None:
    """Files a user put into an artifact folder (not listed by its markers, not part of the new
    result) are linked into the new folder, so swapping does not lose them."""
    listed = _listed(out)
    for entry in out.iterdir():
        if entry.name in listed or entry.name in published or entry.name.endswith(".tmp"):
            continue
        target = build / entry.name
        if entry.is_dir() and not entry.is_symlink():
            shutil.copytree(entry, target, symlinks=True)
            continue
        try:
            os.link(entry, target, follow_symlinks=False)
        except OSError:
            shutil.copy2(entry, target, follow_symlinks=False)


class Staging:
    """A build folder ``.OUT.partial/`` beside ``out``, swapped in by `publish`.

    ``keep_partial``: leave the build folder after a failure (a training job's checkpoint is
    there; the same command with ``--resume`` continues it); a later run without ``resume``
    is then refused rather than dropping that checkpoint. ``resume``: reuse an existing
    build folder instead of starting it afresh."""

    def __init__(self, out_dir: str | os.PathLike, *, resume: bool = False, keep_partial: bool = False,
                 error: type[Exception] = OutputError) -> None:
        self.out_dir = Path(out_dir).absolute()
        self.error = error
        if self.out_dir.exists() and not self.out_dir.is_dir():
            raise error(f"--out {str(out_dir)!r} exists and is not a folder")
        self.resume, self.keep_partial = resume, keep_partial
        self.lock = OutputLock(self.out_dir)
        self._created: list[Path] = []  # parent folders this run created, deepest last
        self.path: Path | None = None
        self.published = False
        self._keep = False

    def keep(self) -> None:
        """Leave the build folder in place at exit (a job stopped early, to be resumed)."""
        self._keep = True

    def __enter__(self) -> "Staging":
        missing = []
        parent = self.out_dir.parent
        while not parent.exists():
            missing.append(parent)
            parent = parent.parent
        try:
            for folder in reversed(missing):
                folder.mkdir()
                self._created.append(folder)
        except OSError as err:
            self._remove_created()
            raise self.error(f"cannot create {self.out_dir}: {err.strerror or err}") from None
        if not os.access(self.out_dir.parent, os.W_OK | os.X_OK):
            raise self.error(f"cannot write into {self.out_dir.parent} (for --out {self.out_dir}): permission denied")
        try:
            self.lock.acquire()
        except OutputError as err:
            self._remove_created()
            raise self.error(str(err)) from None
        try:
            recover(self.out_dir)
            path = partial_dir(self.out_dir)
            if path.exists() and not self.resume:
                unfinished = (path / "checkpoint.pt").is_file() and not (path / "manifest.json").is_file()
                if self.keep_partial and unfinished:  # never drop an interrupted training silently
                    raise self.error(f"{path} holds an interrupted run (checkpoint.pt); pass --resume to continue "
                                     f"it, or delete {path} to start over")
                shutil.rmtree(path)
            path.mkdir(exist_ok=True)
            for stray in path.glob(".*.tmp"):  # a resumed build: half-written temporaries of the killed run
                if stray.is_file():
                    stray.unlink()
        except BaseException:
            self.lock.release()
            raise
        self.path = path
        return self

    def __exit__(self, exc_type: type | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        try:
            keep = self._keep or (exc_type is not None and self.keep_partial)
            if self.path is not None and self.path.exists() and not keep:
                shutil.rmtree(self.path, ignore_errors=True)
        finally:
            self.lock.release()
        if exc_type is not None and not self.published:
            self._remove_created()

    def _remove_created(self) -> None:
        for folder in reversed(self._created):
            try:
                folder.rmdir()  # only if still empty
            except OSError:
                break

    def publish(self, names: Sequence[str], marker: str) -> list[Path]:
        """Make ``out`` hold exactly ``names`` + ``marker`` from the build folder (subfolders
        named in ``names`` included): swapped in whole, or, when ``out`` holds files that are
        not an edgeprune artifact, moved in one by one with the marker last."""
        assert self.path is not None, "publish() inside the with block"
        keep = {Path(n).parts[0] for n in [*names, marker]}
        for entry in self.path.iterdir():  # temporaries and anything not published
            if entry.name not in keep:
                shutil.rmtree(entry) if entry.is_dir() else entry.unlink()
        out = self.out_dir
        if out.exists() and any(out.iterdir()) and not is_artifact(out):
            published = self._publish_file_by_file(names, marker)
        else:
            if out.exists():
                _carry_over_foreign(out, self.path, keep)
            swap_in(self.path, out)
            published = [out / n for n in [*names, marker]]
        self.published = True
        return published

    def _publish_file_by_file(self, names: Sequence[str], marker: str) -> list[Path]:
        out = self.out_dir
        (out / marker).unlink(missing_ok=True)
        published = []
        for name in [*names, marker]:
            publish_step(f"move {name}")
            target = out / name
            if target.is_dir() and not target.is_symlink():
                shutil.rmtree(target)
            os.replace(self.path / name, target)
            published.append(target)
        return published
