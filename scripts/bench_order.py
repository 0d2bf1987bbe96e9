"""The order contenders take their turns in, round after round: shuffled, with a fixed seed.

A turn can leave the machine busy for the next one (PyTorch's OpenMP threads and TensorFlow's pool
spin-wait for a while after their work). Rotating a fixed order makes every contender follow the
same one in every round, so whoever follows a spinning contender pays for it in all rounds: the
native op measured 37.6 ms right after a TensorFlow graph and 36.3 ms as `native_rows`, the same
op with the same split, one place later (AMD EPYC, Zen 4, quiet, 40 rounds). Shuffled, each
contender follows each other one about equally often, and the seed makes a run repeatable.
"""

from __future__ import annotations

import random
import statistics
import time
from collections.abc import Callable, Iterator


def turns(names: list[str], rounds: int, seed: int = 0) -> Iterator[tuple[int, str]]:
    """(round, contender) for every turn: each round runs every contender once, in a new order."""
    shuffle = random.Random(seed)
    for r in range(rounds):
        for name in shuffle.sample(list(names), len(names)):
            yield r, name


def interleaved(runs: dict[str, Callable[[], object]], rounds: int) -> tuple[dict, dict]:
    """Median wall and CPU ms of each run (CPU: every thread of the process): per round, each in a
    shuffled order, one untimed call (whatever the previous contender left spinning settles) and
    one timed call."""
    wall, cpu = {n: [] for n in runs}, {n: [] for n in runs}
    for _round, name in turns(list(runs), rounds):
        runs[name]()
        start, start_cpu = time.perf_counter(), time.process_time()
        runs[name]()
        wall[name].append((time.perf_counter() - start) * 1e3)
        cpu[name].append((time.process_time() - start_cpu) * 1e3)
    return ({n: statistics.median(s) for n, s in wall.items()},
            {n: statistics.median(s) for n, s in cpu.items()})
