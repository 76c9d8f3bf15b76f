"""The timed loop: random inputs made before timing, warm-up, ``perf_counter`` around each run."""

from __future__ import annotations

import gc
import random
import sys
import time
from typing import Callable, Sequence

import numpy as np

from edgeprune.runtime.base import Feeds, InputSpec

POOL_BYTES = 256 * 2**20  # cap on memory spent on pre-generated inputs


def pool_size(specs: Sequence[InputSpec], wanted: int, max_bytes: int = POOL_BYTES) -> int:
    """How many distinct input sets to pre-generate: ``wanted``, capped by ``max_bytes`` (>= 2)."""
    per_set = sum(int(np.prod(s.shape)) * np.dtype(s.dtype).itemsize for s in specs) or 1
    return max(2, min(wanted, max_bytes // per_set))


def random_feeds(specs: Sequence[InputSpec], rng: np.random.Generator) -> Feeds:
    """One input set: standard normal floats, small non-negative ints, random bools."""
    feeds: Feeds = {}
    for s in specs:
        dtype = np.dtype(s.dtype)
        if np.issubdtype(dtype, np.floating):
            feeds[s.name] = rng.standard_normal(s.shape, dtype=np.float32).astype(dtype, copy=False)
        elif dtype == np.bool_:
            feeds[s.name] = rng.random(s.shape) < 0.5
        else:
            feeds[s.name] = rng.integers(0, 10, size=s.shape).astype(dtype)
    return feeds


def make_input_pool(specs: Sequence[InputSpec], size: int, seed: int = 0) -> list[Feeds]:
    """``size`` distinct random input sets (shapes must be concrete)."""
    rng = np.random.default_rng(seed)
    return [random_feeds(specs, rng) for _ in range(size)]


def progress_bar(total: int, desc: str, enabled: bool):
    """A tqdm bar on stderr, or a no-op when disabled, stderr is not a tty, or tqdm is missing."""
    enabled = enabled and sys.stderr.isatty()
    try:
        from tqdm import tqdm
    except ImportError:
        enabled = False
    if not enabled:
        return _NoBar()
    return tqdm(total=total, desc=desc, file=sys.stderr, unit="run", leave=False)


class _NoBar:
    def update(self, n: int = 1) -> None:
        pass

    def close(self) -> None:
        pass


def time_calls(
    calls: Sequence[Callable[[Feeds], object]],
    pool: Sequence[Feeds],
    runs: int,
    warmup: int,
    *,
    progress: bool = False,
    desc: str = "profile",
) -> list[list[float]]:
    """Time each callable ``runs`` times, interleaved (each round runs every callable once), on
    the same inputs.

    Each round draws the next input set from ``pool``; all callables see the same one, in an
    order shuffled per round (seeded: the same every call). A fixed order biases a slot: on
    OpenVINO, of three identical compiled mobilenet_v2s timed in one loop, the one always run
    right after the dense model measured 3-4% slower than the others (0.532 vs 0.513 and 0.516
    of the dense model, median of 5 loops; still 3% with 5 untimed runs of its own before each
    timed one). Warm-up rounds run first and are not recorded. The garbage collector is paused
    while timing. Returns one list of milliseconds per callable, in the order given.
    """
    if runs < 1:
        raise ValueError(f"runs must be >= 1, got {runs}")
    if warmup < 0:
        raise ValueError(f"warmup must be >= 0, got {warmup}")
    samples: list[list[float]] = [[] for _ in calls]
    bar = progress_bar(warmup + runs, desc, progress)
    clock = time.perf_counter
    gc_was_enabled = gc.isenabled()
    gc.collect()
    gc.disable()
    try:
        order = list(range(len(calls)))
        shuffle = random.Random(0).shuffle
        for i in range(warmup + runs):
            feeds = pool[i % len(pool)]
            shuffle(order)
            for k in order:
                call = calls[k]
                t0 = clock()
                call(feeds)
                t1 = clock()
                if i >= warmup:
                    samples[k].append((t1 - t0) * 1000.0)
            bar.update(1)
    finally:
        if gc_was_enabled:
            gc.enable()
        bar.close()
    return samples
