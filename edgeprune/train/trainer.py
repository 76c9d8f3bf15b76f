"""The training loop: SGD + cosine schedule, evaluation and an atomic checkpoint every epoch,
exact resume, methods plugged in through `TrainingMethod`, and DistributedDataParallel on gloo.

Determinism: deterministic algorithms are switched on for the run; every epoch reseeds the
global RNGs and the batch generators from ``(seed, epoch, rank)``, so a run resumed at an
epoch boundary replays exactly what an uninterrupted run computes (same process count and
thread count: float reductions depend on both).
"""

from __future__ import annotations

import random
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from edgeprune.data.base import DataError, DataSplits, ImageSet
from edgeprune.data.batches import (
    eval_batches,
    generator,
    num_train_batches,
    train_batches,
)
from edgeprune.files.atomic import write_json
from edgeprune.methods.base import MethodBase, TrainingMethod
from edgeprune.train.base import TrainConfig, TrainError, lr_at
from edgeprune.train.checkpoint import (
    FILENAME,
    check_same_run,
    load_checkpoint,
    rng_state,
    save_checkpoint,
    set_rng_state,
)
from edgeprune.train.distributed import Dist, current

METRICS = "metrics.json"
METRICS_SCHEMA = "edgeprune.metrics/1"


class _Net(nn.Module):
    """The model plus the method's own parameters, so that DDP all-reduces their gradients
    too; forward lets the method compute its masks (in training mode) first, then run the
    model its way (``method.forward``: CR-SFP runs two views through two networks in one call,
    so that DDP sees one forward per backward)."""

    def __init__(self, model: nn.Module, method: TrainingMethod) -> None:
        super().__init__()
        self.model = model
        self.extra = nn.ParameterList(method.parameters())
        self.__dict__["method"] = method  # not a submodule

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            self.method.before_forward()
        return self.method.forward(self.model, x)


@contextmanager
def deterministic():
    was = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(was)


@torch.no_grad()
def evaluate(model: nn.Module, data: ImageSet, batch_size: int = 500, dist: Dist | None = None) -> dict[str, float]:
    """Top-1 accuracy and mean cross-entropy on ``data`` (eval mode; sharded over ranks)."""
    dist = dist or current()
    was = model.training
    model.eval()
    sums = torch.zeros(3, dtype=torch.float64)  # loss sum, correct, count
    try:
        for batch in eval_batches(data, batch_size, rank=dist.rank, world=dist.world):
            logits = model(batch.x)
            sums[0] += F.cross_entropy(logits, batch.labels, reduction="sum").item()
            sums[1] += (logits.argmax(1) == batch.labels).sum().item()
            sums[2] += len(batch.labels)
    finally:
        model.train(was)
    dist.all_reduce_sum(sums)
    return {"loss": float(sums[0] / sums[2]), "accuracy": float(sums[1] / sums[2]), "samples": int(sums[2])}


def check_classes(model: nn.Module, data: DataSplits, spec: str) -> None:
    """The model's output width must equal the dataset's class count."""
    was = model.training
    model.eval()
    with torch.no_grad():
        out = model(eval_batches(data.test, 2).__next__().x)
    model.train(was)
    if out.dim() != 2 or out.shape[1] != data.num_classes:
        raise DataError(
            f"{spec} outputs {tuple(out.shape[1:])} values per sample but {data.train.name} has "
            f"{data.num_classes} classes; build the model for them, e.g. "
            f"'edgeprune:resnet20(num_classes={data.num_classes})'"
        )


class Trainer:
    """Train ``model`` on ``data`` with ``config``.

    Args:
        out: folder for checkpoint.pt and metrics.json (None: keep nothing on disk).
        method: a training-time method (DTP, ...); None trains the plain network.
        run: what identifies the run (spec, fingerprint, job, method settings); a checkpoint
            resumes only under the same ``run``, config and data.
        dist: the process group (default: the current one, if any).
        progress: show tqdm bars on stderr (rank 0 only).
    """

    def __init__(
        self,
        model: nn.Module,
        data: DataSplits,
        config: TrainConfig,
        *,
        out: str | Path | None = None,
        method: TrainingMethod | None = None,
        run: dict[str, Any] | None = None,
        dist: Dist | None = None,
        progress: bool = True,
    ) -> None:
        self.model = model
        self.data = data
        self.config = config
        self.out = Path(out) if out is not None else None
        self.method = method or MethodBase()
        self.dist = dist or current()
        self.progress = progress
        self.run = {**(run or {}), "config": config.to_json(), "data": data.describe()}
        self.history: list[dict[str, Any]] = []
        self.epoch = 0  # completed epochs
        self.step = 0  # optimizer steps taken
        self.steps_per_epoch = num_train_batches(len(data.train), config.batch_size, self.dist.world)
        self.total_steps = self.steps_per_epoch * config.epochs
        self.net: nn.Module = _Net(model, self.method)
        params = [
            {"params": list(model.parameters()), "weight_decay": config.weight_decay, "lr_scale": 1.0},
            {"params": self.method.parameters(), "weight_decay": 0.0, "lr_scale": self.method.lr_scale},
        ]
        self.optimizer = torch.optim.SGD(
            [g for g in params if g["params"]], lr=config.lr, momentum=config.momentum
        )
        if self.dist.enabled:
            self.net = nn.parallel.DistributedDataParallel(self.net)  # BN buffers follow rank 0

    # ---- checkpoints ---------------------------------------------------------------------

    @property
    def checkpoint_path(self) -> Path | None:
        return self.out / FILENAME if self.out is not None else None

    def _state(self) -> dict[str, Any]:
        return {
            "epoch": self.epoch,
            "step": self.step,
            "run": self.run,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": {"step": self.step, "schedule": self.config.schedule},
            "method": self.method.state_dict(),
            "rng": rng_state(),
            "metrics": self.history,
        }

    def _resume(self) -> None:
        path = self.checkpoint_path
        state = load_checkpoint(path)
        check_same_run(path, state.get("run", {}), self.run)
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.method.load_state_dict(state["method"])
        set_rng_state(state["rng"])
        self.epoch, self.step = int(state["epoch"]), int(state["scheduler"]["step"])
        self.history = list(state["metrics"])

    def _write(self, complete: bool) -> None:
        if self.out is None or not self.dist.is_main:
            return
        save_checkpoint(self.checkpoint_path, self._state())
        write_json(self.out / METRICS, self.metrics(complete))

    def metrics(self, complete: bool) -> dict[str, Any]:
        out: dict[str, Any] = {"schema": METRICS_SCHEMA, **self.run, "epochs": self.history, "complete": complete}
        if complete and self.history:
            out["accuracy"] = self.history[-1]["test_accuracy"]
        return out

    # ---- the loop ------------------------------------------------------------------------

    def fit(self, resume: bool = False, stop_after: int | None = None) -> dict[str, Any]:
        """Train to ``config.epochs`` (or stop after epoch ``stop_after``); return metrics.

        ``resume``: continue from ``out/checkpoint.pt`` if it exists. Without it an existing
        checkpoint is an error, so that a finished or running job is never overwritten."""
        path = self.checkpoint_path
        exists = path is not None and path.is_file()
        if exists and not resume:
            raise TrainError(
                f"{self.out} already holds a training checkpoint ({path.name}); pass --resume to "
                "continue that run, or choose another --out"
            )
        self.method.on_train_start(self)
        if exists:
            self._resume()
        if self.epoch >= self.config.epochs:  # a finished run: nothing left to train
            if self.out is not None and self.dist.is_main:  # killed between its checkpoint and metrics.json
                write_json(self.out / METRICS, self.metrics(complete=True))
            return self.metrics(complete=True)
        with deterministic():
            while self.epoch < self.config.epochs:
                record = self._train_epoch(self.epoch)
                record.update(self.method.on_epoch_end(self.epoch))
                test = evaluate(self.net, self.data.test, self.config.eval_batch_size, self.dist)
                record.update(test_loss=test["loss"], test_accuracy=test["accuracy"])
                self.epoch += 1
                self.history.append(record)
                self._write(complete=self.epoch == self.config.epochs)
                self._log(record)
                if stop_after is not None and self.epoch >= stop_after:
                    break
        self.dist.barrier()
        return self.metrics(complete=self.epoch == self.config.epochs)

    def _seed(self, epoch: int) -> None:
        seed = int(torch.randint(0, 2**31 - 1, (1,), generator=generator(self.config.seed, epoch, self.dist.rank, 0)))
        torch.manual_seed(seed)
        np.random.seed(seed)
        random.seed(seed)

    def _train_epoch(self, epoch: int) -> dict[str, Any]:
        from tqdm import tqdm

        start = time.perf_counter()
        self._seed(epoch)
        self.net.train()
        batches = train_batches(
            self.data.train, self.config.batch_size, seed=self.config.seed, epoch=epoch,
            aug=self.data.augment, views=self.method.views, rank=self.dist.rank, world=self.dist.world,
        )
        bar = tqdm(
            batches, total=self.steps_per_epoch, desc=f"epoch {epoch + 1}/{self.config.epochs}",
            file=sys.stderr, leave=False, disable=not self.progress or not self.dist.is_main, dynamic_ncols=True,
        )
        sums = torch.zeros(3, dtype=torch.float64)  # loss sum, correct, count
        lr = lr_at(self.config, self.step, self.total_steps)
        for batch in bar:
            lr = lr_at(self.config, self.step, self.total_steps)
            for group in self.optimizer.param_groups:
                group["lr"] = lr * group["lr_scale"]
            self.method.on_step_start(self.step, self.total_steps)
            loss, logits = self.method.loss(self.net, batch)
            total = self.method.on_step(loss)
            self.optimizer.zero_grad(set_to_none=True)
            total.backward()
            self.optimizer.step()
            self.method.after_step()
            self.step += 1
            n = len(batch.labels)
            sums += torch.tensor([loss.item() * n, (logits.argmax(1) == batch.labels).sum().item(), n], dtype=torch.float64)
            bar.set_postfix(loss=f"{sums[0] / sums[2]:.3f}", acc=f"{sums[1] / sums[2]:.3f}", refresh=False)
        self.dist.all_reduce_sum(sums)
        return {
            "epoch": epoch + 1,
            "lr": lr,
            "train_loss": float(sums[0] / sums[2]),
            "train_accuracy": float(sums[1] / sums[2]),
            "elapsed_s": round(time.perf_counter() - start, 2),
        }

    def _log(self, record: dict[str, Any]) -> None:
        if self.progress and self.dist.is_main:
            print(
                f"epoch {record['epoch']}/{self.config.epochs}  loss {record['train_loss']:.4f}  "
                f"train {record['train_accuracy']:.4f}  test {record['test_accuracy']:.4f}  "
                f"({record['elapsed_s']:.0f}s)",
                file=sys.stderr,
            )
