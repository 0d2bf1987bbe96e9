"""`auto` for the forward pass: the candidate engines timed the way the run uses them, the choice kept.

The candidates are the engines that compute the model: `keras` always (the baseline: `decide` never
picks an engine slower than it), `native` (where its op builds and loads) and `fused` for plain LSTM
stacks, except that a single pass does not time `fused` when `native` can run (below). The mode part
of the shape class says how the run will call the engine, because the fastest engine differs:

- ``forward`` (``run.repeat=0``): one pass, so what counts is building the engine plus its first call
  (layer building for eager Keras). Each candidate is built and called once, timed as one sample.
  `fused`'s single pass is a graph traced for that pass: timing it costs the run the trace itself
  (the tutorial, AMD EPYC at load 7: 4.6 s, against 0.08 s for native's first call and 0.6 s for
  eager Keras'), more than it could ever win back in one pass, so it is timed only where `native`
  cannot run. On the tutorial the measurement then adds eager Keras' first call to the first run
  of a CPU and shape class (scripts/bench_auto_first_run.py, README).
- ``forward-timed`` / ``forward-timed-xla`` (``run.repeat`` 1-4 / >= XLA_MIN_REPEAT): the median of
  many timed calls is what the run reports, so each candidate is built as the run builds it
  (`tf.function`, `fused` with XLA from XLA_MIN_REPEAT passes on), warmed up once (tracing,
  compiling) and timed over a few interleaved calls (`engine_choice.time_candidates`).

The choice is kept in ``choices.json`` beside the native op (its folder's name hashes the op's
source, the compiler, TensorFlow and this CPU); where the op cannot load, in a folder named by
TensorFlow's version and this CPU. A run of one config on one machine therefore runs the engine its
first run chose, which keeps `rerun` bit-identical.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from lstm_exp.compute.engine_choice import BASELINE, measured_choice, shape_class, time_candidates
from lstm_exp.compute.engines import XLA_MIN_REPEAT, build_forward
from lstm_exp.config.specs import ModelSpec

log = logging.getLogger(__name__)


def forward_mode(timed: int) -> str:
    """The mode part of the shape class for a run of `timed` timed passes (0: one pass)."""
    if not timed:
        return "forward"
    return "forward-timed-xla" if timed >= XLA_MIN_REPEAT else "forward-timed"


def candidate_engines(spec: ModelSpec, timed: int) -> tuple[tuple[str, ...], str]:
    """The engines `auto` times for `spec` and a run of `timed` timed passes, the baseline last; and
    why native is missing ("" when it is there). Loads (or builds) the native op."""
    if not spec.native_stack:
        return (BASELINE,), ""
    from lstm_exp.compute.native.build import NativeBuildError
    from lstm_exp.compute.native.engine import load

    try:
        load()
    except NativeBuildError as err:
        return ("fused", BASELINE) if spec.plain_lstm_stack else (BASELINE,), str(err)
    if spec.plain_gru_stack:  # `fused` is LSTM only
        return ("native", BASELINE), ""
    return ("native", "fused", BASELINE) if timed else ("native", BASELINE), ""


def choices_folder() -> Path:
    """Where `auto` keeps its forward choices: the native op's cache folder, or, where the op
    cannot load, one named by TensorFlow's version and this CPU beside it."""
    from lstm_exp.compute.native.build import NativeBuildError
    from lstm_exp.compute.native.engine import load

    try:
        return load().build.path.parent
    except NativeBuildError:
        import tensorflow as tf

        from lstm_exp.compute.native import cpu
        from lstm_exp.compute.native.cache import cache_root

        digest = hashlib.sha256(f"{tf.__version__}|{cpu.fingerprint()}".encode()).hexdigest()[:16]
        return cache_root() / f"choices-tf{tf.__version__}-{digest}"


def auto_forward(spec: ModelSpec, weights, data, timed: int,
                 folder: Path | None = None) -> tuple[str, str, Callable[[], dict]]:
    """`model.implementation=auto` resolved by measurement (or the kept choice) and built.

    Args:
        spec, weights, data: the validated model, keras-layout weights, the `InputData`.
        timed: how many passes the run will time (0 = one pass): the mode and how candidates are built.
        folder: where ``choices.json`` lives (default `choices_folder()`).

    Returns:
        (the engine that runs, why - e.g. ``auto, measured 75.2 ms vs keras 619.7 ms`` -,
        a function of no arguments that runs one forward pass).
    """
    engines, unavailable = candidate_engines(spec, timed)
    if unavailable:
        log.info("native %s engine unavailable, auto measures %s instead: %s", spec.cell.upper(),
                 " and ".join(engines), unavailable)
    if engines == (BASELINE,):
        engine, run = build_forward(BASELINE, spec, weights, data, timed)
        why = (f"native unavailable: {unavailable}" if unavailable
               else "the only engine that computes this model")
        return engine, f"auto, {why}", run
    key = shape_class(forward_mode(timed), data.x.shape, spec.units, spec.cell)
    built: dict[str, Callable[[], dict]] = {}

    def build(engine: str) -> Callable[[], dict]:
        built[engine] = build_forward(engine, spec, weights, data, timed)[1]
        return built[engine]

    def candidate(engine: str) -> Callable[[], object]:
        def run():  # one pass, waited for as a caller reading the arrays would
            # A single-pass run builds and calls once: so does each sample. Timed: built once.
            call = built[engine] if timed and engine in built else build(engine)
            return np.asarray(call()["output"])
        return run

    choice = measured_choice(folder or choices_folder(), key, {e: candidate(e) for e in engines},
                             timing=time_candidates if timed else _first_calls)
    return choice.engine, f"auto, {choice.why}", built.get(choice.engine) or build(choice.engine)


def _first_calls(candidates: dict[str, Callable[[], object]]) -> dict[str, float]:
    """ms of one call of each candidate (a build and its first pass), after one tiny TensorFlow op
    so that the eager runtime's start-up is charged to none of them; the baseline goes last, so any
    cost that one candidate leaves to the next falls on the others, never on stock Keras."""
    import tensorflow as tf

    np.asarray(tf.linalg.matmul(tf.ones((1, 1)), tf.ones((1, 1))))
    timings = {}
    for name in sorted(candidates, key=lambda n: n == BASELINE):
        start = time.perf_counter()
        candidates[name]()
        timings[name] = (time.perf_counter() - start) * 1e3
    return timings

