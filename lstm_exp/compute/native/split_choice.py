"""How the native op's threads share a layer, chosen by measuring on first use.

The op splits a layer two ways (``lstm_forward.cc``, ``lstm_columns.cc``): by batch ROWS (each
thread owns rows, the threads never meet) or by gate COLUMNS (each thread owns unit blocks of U,
one barrier per step). Both give bit-identical outputs, so the choice is about speed only, and the
faster one depends on the CPU (its L2 next to the size of U, the cost of a barrier), its load and
the shape. So it is not a rule: on the first call for a CPU build and shape class, both are timed
on the layer's shape (random inputs) and the faster kept, through `engine_choice.measured_choice`
under the mode ``native-split`` in the same ``choices.json`` as the engine choices. The row split,
which needs no barrier, is the baseline: the column split is kept only when it measured clearly
faster, by more than `COLUMNS_LEAD`. A layer timed alone is a few milliseconds, so its medians move
by a few percent with nothing else changed: on an AMD EPYC (Zen 4) a marginal 4.8 % column win of
the first layer alone (14.9 vs 15.7 ms) did not hold in the stack (rows 36.1 ms, that layer on
columns 37.0 ms, medians of 40 interleaved calls).
"""

from __future__ import annotations

import logging

import numpy as np

from lstm_exp.compute.engine_choice import measured_choice, shape_class, time_candidates

log = logging.getLogger(__name__)

SPLITS = ("rows", "columns")
BASELINE = "rows"
MODE = "native-split"
SPLIT_CALLS = 7  # timed calls each: a layer's call is short, so more calls than an engine's 3
COLUMNS_LEAD = 0.10  # where columns wins, by its L2 gain, it wins by more; within 10 % is noise


def split_key(shape: tuple[int, int, int], units: int, max_threads: int) -> str:
    """The choice's key, e.g. ``native-split B32 T128 F64 U256`` (``native-split threads=1 ...``
    when the thread count is capped)."""
    mode = MODE if max_threads <= 0 else f"{MODE} threads={max_threads}"
    return shape_class(mode, shape, (units,))


def choose_split(op, folder, shape: tuple[int, int, int], packed: tuple, units: int,
                 max_threads: int) -> str:
    """``rows`` or ``columns`` for one layer of `shape` (B, T, F), kept or measured now.

    Args:
        op: The loaded op module (``engine.load().module``).
        folder: Where ``choices.json`` lives (the op's cache folder).
        shape: The layer's input shape (B, T, F).
        packed: The layer's packed (kernel, bias, recurrent kernel) tensors.
        units: The layer's units H.
        max_threads: The op's ``max_threads`` (0: TensorFlow's intra-op pool).

    Returns:
        The split to run; ``rows`` without measuring where only one thread can work (one row, or
        one thread), as the two splits are then the same loop.
    """
    import tensorflow as tf

    batch, steps, features = shape
    if batch <= 1 or max_threads == 1 or steps == 0:
        return BASELINE
    kernel, bias, recurrent = packed
    with tf.init_scope():  # measured eagerly, also when first met while tracing a tf.function
        x = tf.constant(np.random.default_rng(0).standard_normal(shape, np.float32))
        zeros = tf.zeros((batch, units))
        lengths = tf.fill([batch], steps)

        def run(split):
            def call():
                seq = op.lstm_exp_native_layer(x, kernel, bias, recurrent, zeros, zeros, lengths,
                                               return_gates=False, max_threads=max_threads,
                                               split=split)[0]
                return seq.numpy()  # waits for the op
            return call

        choice = measured_choice(folder, split_key(shape, units, max_threads),
                                 {split: run(split) for split in SPLITS}, baseline=BASELINE,
                                 timing=lambda calls: time_candidates(calls, SPLIT_CALLS),
                                 lead=COLUMNS_LEAD)
    return choice.engine
