"""The engines that run a stack, which one a run gets, and how a forward pass is timed.

- `keras`: one stock Keras layer per layer and direction (`model.KerasStack`); the TF1-style cell for
  the LSTM extras. Eager for a single pass, a `tf.function` when passes are timed.
- `fused`: `fused.FusedLSTMStack`, plain LSTM stacks only: the input projection of every step as one
  product, only the recurrent product in the loop; a traced graph for a single pass, XLA when timed.
- `native`: `native.NativeLSTMStack`, the same models as `fused`: a C++ op per layer (compiled on
  first use) computes the input projection a cache-sized chunk of steps at a time and the time loop.
  Eager for a single pass, a `tf.function` when timed. Where it cannot be built or loaded,
  `resolve_engine` falls back.

`auto` is measured on first use per CPU and shape class (`forward_choice.py`), not decided here.
"""

import logging
import time
from collections.abc import Callable

import numpy as np

from lstm_exp.compute.initializers import GATE_COUNT
from lstm_exp.config import names
from lstm_exp.config.specs import ModelSpec

log = logging.getLogger(__name__)

# Timed passes from which XLA's compile time (~0.5 s) is won back by its faster steady state.
XLA_MIN_REPEAT = 5


def choose_engine(spec: ModelSpec, shape: tuple[int, int, int]) -> str:
    """`model.implementation` for an input of shape (B, T, F), before TensorFlow is loaded.

    `auto` stays `auto` for plain LSTM stacks: which of `native`, `fused` and `keras` runs is
    measured where the engine is built (`forward_choice.auto_forward`), because the fastest one
    depends on the CPU, the load, the shape and whether passes are timed. A rule fixed here before
    was tuned on one CPU (2-core Intel Xeon, AVX-512): native won there at every size measured, from
    the tutorial (first call 0.005 s vs eager Keras 0.076 s, fused graph 0.22 s) to (64,256,128)
    [512,512] timed (native 515 ms, fused XLA 675-819, stock XLA 645-654), but on a loaded machine
    its static row split lost to TF's pools (81 ms vs fused 61-68 at (32,128,64) [256,256]). On
    the AMD EPYC (Zen 4, AVX-512) of the README's training figures, at load 4-7, the measurement
    gave the tutorial's first call native 33-75 ms, eager Keras 313-620 ms, the fused trace 4.6 s.
    Plain GRU stacks are measured too (`native` against `keras`: `fused` is LSTM only). Every other
    model has one engine, `keras`. `native` may still fall back when it runs: see
    `resolve_engine`. (`experiment.parse` refused `fused` and `native` for the models they do not
    compute.)
    """
    if spec.implementation != "auto":
        return spec.implementation
    return "auto" if spec.native_stack else "keras"


def resolve_engine(engine: str, spec: ModelSpec) -> str:
    """The engine that will actually run: `native` where its op builds and loads, else `fused` (a
    GRU stack: `keras`), with one warning naming the reason. Every other engine is returned unchanged.
    """
    if engine != "native":
        return engine
    from lstm_exp.compute.native.build import NativeBuildError
    from lstm_exp.compute.native.engine import load

    try:
        load()
        return "native"
    except NativeBuildError as err:
        fallback = "fused" if spec.plain_lstm_stack else "keras"
        log.warning("native %s engine unavailable, running %s instead: %s", spec.cell.upper(), fallback, err)
        return fallback


def engine_build(engine: str) -> str:
    """The build of `engine` that runs in this process: native's vector unit (`avx512`, `avx2`,
    `avx`, `portable`), "" for the engines that have no build of their own."""
    if engine != "native":
        return ""
    from lstm_exp.compute.native.engine import load

    return load().build.isa


def build_forward(engine: str, spec: ModelSpec, weights, data, timed: int) -> tuple[str, Callable[[], dict]]:
    """Builds the engine; returns a function of no arguments that runs one forward pass.

    Args:
        engine: `keras`, `fused` or `native` (a `native` that cannot load runs its fallback);
            `auto` is resolved by `forward_choice.auto_forward`, which calls this per candidate.
        spec, weights, data: the validated model, keras-layout weights, the `InputData`.
        timed: how many passes will be timed (0 = one pass): compiling pays only for many.

    Returns:
        (the engine that runs, the function).
    """
    import tensorflow as tf

    engine = resolve_engine(engine, spec)
    x = tf.constant(data.x)
    lengths = None if data.lengths is None else tf.constant(data.lengths)
    state = {name: tf.constant(value) for name, value in data.initial_state.items()}
    if engine == "fused":
        from lstm_exp.compute.fused import FusedLSTMStack

        stack = FusedLSTMStack(spec.units, jit_compile=timed >= XLA_MIN_REPEAT, weights=weights)
        last = names.array_name(len(spec.units) - 1, names.SEQUENCE)

        def run_fused():
            arrays = stack(x, lengths=lengths, initial_state=state, return_gates=True)
            return {**arrays, names.OUTPUT: arrays[last]}

        return engine, run_fused
    if engine == "native":
        from lstm_exp.compute.native.engine import NativeLSTMStack
        from lstm_exp.compute.native.gru_engine import NativeGRUStack

        native = NativeGRUStack(weights) if spec.cell == "gru" else NativeLSTMStack(weights)
        call = tf.function(native.__call__) if timed else native.__call__
        gates = {} if spec.cell == "gru" else {"return_gates": True}  # a GRU has no gate arrays
        last = names.array_name(len(spec.units) - 1, names.SEQUENCE)

        def run_native():
            arrays = call(x, lengths, state, **gates)
            return {**arrays, names.OUTPUT: arrays[last]}

        return engine, run_native
    from lstm_exp.compute.keras_stack import KerasStack

    stack = KerasStack(spec, weights, data.x.shape[-1])
    call = tf.function(stack.__call__) if timed else stack.__call__

    def run_keras():
        return call(x, lengths, state)

    return engine, run_keras


def time_forward(run_once, repeat: int) -> float:
    """Median wall time of `repeat` forward passes, in ms, after one warm-up pass."""
    run_once()
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        np.asarray(run_once()["output"])  # wait for the result, as a caller would
        samples.append((time.perf_counter() - start) * 1e3)
    return float(np.median(samples))


def forward_flops(spec: ModelSpec, shape: tuple[int, int, int]) -> float:
    """Multiply-add FLOPs of one forward pass (2 per multiply-add, matrix products only)."""
    batch, steps, fan_in = shape
    gates = GATE_COUNT[spec.cell]
    flops = 0.0
    for k, units in enumerate(spec.units):
        per_direction = fan_in * gates * units + spec.hidden_size(k) * gates * units
        if spec.proj_size:
            per_direction += units * spec.proj_size
        flops += 2 * batch * steps * per_direction * (2 if spec.bidirectional else 1)
        fan_in = spec.output_size(k)
    return flops
