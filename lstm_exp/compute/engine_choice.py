"""`auto` by measurement: time the candidate engines on first use, keep the choice per CPU and shape class.

A choice is kept in ``choices.json`` in the native op's cache folder (``cache.py``), whose name
already hashes the op's source, the compiler, TensorFlow's version and this CPU; within it the key
is the mode (``training``; ``forward``, ``forward-timed``, ``forward-timed-xla``: see
``forward_choice.py``) and the shape class: batch, steps, features and each layer's units rounded up
to a power of two. The file is rewritten whole under a temporary name and
renamed into place while holding the folder's lock, so a reader sees the old file or the new one;
one that cannot be read is ignored with a log line and the choice measured again, never a crash.
Where two processes measure one class at once, the first to keep its choice decides for both.

The stock engine (`keras`) is the baseline: another engine is chosen only when its median is
below the baseline's, so `auto` never picks an engine slower than stock Keras on this machine.
Reusing the kept choice is also what makes two runs of one config on one machine run the same
engine, hence give bit-identical weights.
"""

from __future__ import annotations

import json
import logging
import os
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

CHOICES = "choices.json"
BASELINE = "keras"
MEASURED_CALLS = 3  # timed calls per candidate, after one warm-up call each (tracing, first-call costs)


@dataclass(frozen=True)
class Choice:
    """The engine `auto` runs and why, e.g. ``Choice("native", "measured: 41 ms vs keras 93 ms")``."""

    engine: str
    why: str


def shape_class(mode: str, shape: tuple[int, int, int], units: tuple[int, ...], cell: str = "lstm") -> str:
    """The cache key: the mode and every size rounded up to a power of two, e.g.
    ``training B32 T128 F64 U256-256``; a cell other than the LSTM names itself after the mode
    (``training-gru B32 ...``), so that cells never share a kept choice and LSTM keeps its keys."""

    def up(n: int) -> int:
        return 1 << max(0, int(n) - 1).bit_length()

    batch, steps, features = shape
    mode = mode if cell == "lstm" else f"{mode}-{cell}"
    return f"{mode} B{up(batch)} T{up(steps)} F{up(features)} U{'-'.join(str(up(u)) for u in units)}"


def read_choices(path: Path, warn: bool = True) -> dict[str, dict]:
    """The kept choices; ``{}`` when there is no file or it cannot be read (logged when `warn`)."""
    try:
        data = json.loads(path.read_text())
        if not isinstance(data, dict) or not all(isinstance(v, dict) and isinstance(v.get("engine"), str)
                                                 for v in data.values()):
            raise ValueError("not a mapping of shape classes to choices")
        return data
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as err:
        if not warn:
            return {}
        log.warning("ignoring the engine choices in %s (%s: %s); measuring again", path,
                    type(err).__name__, err)
        return {}


def _keep(path: Path, key: str, choice: Choice, timings: dict[str, float], engines) -> Choice:
    """Keeps `choice` for `key`, unless another process kept one while this one measured: then that
    one, which this run adopts, so that every run of the class runs one engine (a parallel sweep's
    first jobs all measure; the first to finish decides for all)."""
    from lstm_exp.compute.native.cache import file_lock

    path.parent.mkdir(parents=True, exist_ok=True)
    with file_lock(path.with_name(".lock")):
        choices = read_choices(path, warn=False)  # a bad file was reported by the read that found it
        theirs = choices.get(key)
        if theirs is not None and theirs["engine"] in engines:
            return Choice(theirs["engine"], f"kept choice ({theirs.get('why', 'measured')})")
        choices[key] = {"engine": choice.engine, "why": choice.why, "median_ms": timings}
        partial = path.with_name(f".{CHOICES}.{os.getpid()}.tmp")
        partial.write_text(json.dumps(choices, indent=1, sort_keys=True))
        os.replace(partial, path)
    return choice


def time_candidates(candidates: dict[str, Callable[[], object]],
                    calls: int = MEASURED_CALLS) -> dict[str, float]:
    """Median ms per call of each candidate: one warm-up call each, then `calls` interleaved rounds
    (each round in a rotated order), so that load from other processes hits every candidate alike."""
    for run in candidates.values():
        run()
    names, samples = list(candidates), {name: [] for name in candidates}
    for r in range(calls):
        for name in names[r % len(names):] + names[: r % len(names)]:
            start = time.perf_counter()
            candidates[name]()
            samples[name].append((time.perf_counter() - start) * 1e3)
    return {name: statistics.median(s) for name, s in samples.items()}


def decide(timings: dict[str, float], baseline: str = BASELINE, lead: float = 0.0) -> Choice:
    """The fastest candidate, the baseline unless another one beats it by more than `lead`
    (a fraction of the baseline's time: 0 for a plain race)."""
    best = min(timings, key=lambda name: (timings[name], name != baseline))
    if timings[best] >= timings[baseline] * (1.0 - lead):
        best = baseline
    others = ", ".join(f"{n} {t:.1f} ms" for n, t in sorted(timings.items()) if n != best)
    needed = f" (another needs a {lead:.0%} lead)" if lead > 0 else ""
    return Choice(best, f"measured {timings[best]:.1f} ms vs {others}{needed}")


def measured_choice(folder: Path, key: str, candidates: dict[str, Callable[[], object]],
                    timing: Callable[[dict[str, Callable[[], object]]], dict[str, float]] = time_candidates,
                    baseline: str = BASELINE, lead: float = 0.0) -> Choice:
    """The kept choice for `key`, or the candidates timed now and the choice kept.

    Args:
        folder: where ``choices.json`` lives (the native op's cache folder).
        key: `shape_class(...)`.
        candidates: engine name -> a call that runs one step and waits for it; must hold `baseline`.
            Calls must not change any state a run keeps (time gradients, not optimizer steps).
        timing: candidates -> median ms of each (default: a warm-up and MEASURED_CALLS calls each).
        baseline: the candidate kept unless another one is faster (`keras` for engines; the
            native op's own choices, such as its thread split, name theirs).
        lead: how much faster than the baseline another candidate must measure, as a fraction of
            the baseline's time (0: any amount).
    """
    path = folder / CHOICES
    kept = read_choices(path).get(key)
    if kept is not None and kept["engine"] in candidates:
        return Choice(kept["engine"], f"kept choice ({kept.get('why', 'measured')})")
    timings = timing(candidates)
    choice = decide(timings, baseline, lead)
    try:
        choice = _keep(path, key, choice, timings, candidates)
    except Exception as err:  # noqa: BLE001 - an unwritable cache costs a measurement per run, not the run
        log.warning("could not keep the engine choice in %s: %s: %s", path, type(err).__name__, err)
    log.info("auto engine for %s: %s (%s)", key, choice.engine, choice.why)
    return choice
