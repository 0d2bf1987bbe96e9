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
from collections.abc import Iterator


def turns(names: list[str], rounds: int, seed: int = 0) -> Iterator[tuple[int, str]]:
    """(round, contender) for every turn: each round runs every contender once, in a new order."""
    shuffle = random.Random(seed)
    for r in range(rounds):
        for name in shuffle.sample(list(names), len(names)):
            yield r, name
