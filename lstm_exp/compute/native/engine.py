"""A stack of plain LSTM layers run by the native C++ op (``lstm_forward.cc``), one op per layer.

Per layer, one op runs the whole layer in C++: the input projection a chunk of steps at a time,
then the time loop (recurrent product + cell). Everything stays batch-major, so no transposes are
needed. Works eagerly and inside ``tf.function``.

Variable lengths follow TF1 ``dynamic_rnn``: past a row's length its state is carried unchanged
and its outputs (sequence and gates) are zero.
"""

from __future__ import annotations

import ctypes
import functools
import logging
import os
from dataclasses import dataclass

import numpy as np

from lstm_exp.compute.native import cpu
from lstm_exp.compute.native.build import Build, NativeBuildError
from lstm_exp.compute.native.cache import DISABLE_ENV, cached_build
from lstm_exp.compute.native.split_choice import BASELINE, SPLITS, choose_split
from lstm_exp.compute.native.target import MARCH_ENV, why_narrower
from lstm_exp.config import names
from lstm_exp.config.names import GATES

log = logging.getLogger(__name__)



@dataclass(frozen=True)
class LoadedOp:
    """The op module, the unit block width its U packing uses, and the build it came from."""

    module: object
    width: int
    build: Build


@functools.cache
def _load_once(_env: tuple):
    """The `LoadedOp` or the NativeBuildError, once per process and environment."""
    try:
        import tensorflow as tf

        built = cached_build()  # verified: a damaged library is never mapped
        module = tf.load_op_library(str(built.path))
        width = int(ctypes.CDLL(str(built.path)).lstm_exp_native_block_width())
    except NativeBuildError as err:
        return err
    except Exception as err:  # noqa: BLE001 - a broken load must fall back, whatever it raises
        return NativeBuildError(f"loading the native LSTM op failed: {type(err).__name__}: {err}")
    if cpu.narrower(built.isa, cpu.widest_isa()):
        log.warning("the native LSTM op runs its %s build, narrower than this CPU's %s: %s", built.isa,
                    cpu.widest_isa(), why_narrower() or " | ".join(built.failures)
                    or "the compiler chose it")
    return LoadedOp(module, width, built)


def load() -> LoadedOp:
    """The loaded op, built (or found verified in the cache) on first use.

    Raises:
        NativeBuildError: the op cannot be built or loaded here.
    """
    env = tuple(os.environ.get(name) for name in (DISABLE_ENV, MARCH_ENV, "CXX", "XDG_CACHE_HOME"))
    loaded = _load_once(env)
    if isinstance(loaded, NativeBuildError):
        raise loaded
    return loaded


def pack_kernel(kernel: np.ndarray, units: int, width: int) -> np.ndarray:
    """(K, 4H) keras-layout W or U -> (Hp/W, K, 4, W), units zero-padded to Hp, a multiple of W.

    Each W-unit block then holds its 4 gate slices contiguously per input k: the panel the
    kernel streams while one register tile accumulates.
    """
    depth = kernel.shape[0]
    padded = -(-units // width) * width
    gates = np.zeros((depth, 4, padded), np.float32)
    gates[:, :, :units] = np.asarray(kernel, np.float32).reshape(depth, 4, units)
    return np.ascontiguousarray(gates.reshape(depth, 4, padded // width, width).transpose(2, 0, 1, 3))


def pack_bias(bias: np.ndarray, units: int, width: int) -> np.ndarray:
    """(4H,) keras-layout bias -> (Hp/W, 4, W), the layout of one row of ``pack_kernel``."""
    return pack_kernel(np.asarray(bias, np.float32)[None, :], units, width)[:, 0]


class NativeLSTMStack:
    """Plain, unidirectional keras-layout LSTM layers computed by the native op.

    Args:
        weights: ``layer_{k}/kernel`` (F_k, 4H_k), ``layer_{k}/recurrent_kernel`` (H_k, 4H_k),
            ``layer_{k}/bias`` (4H_k,), gate order i, f, g, o, for k = 0, 1, ...
        max_threads: Threads per layer (0: TensorFlow's intra-op pool size, capped by the batch).
        chunk_steps: Steps whose input projection is computed at a time (0: as many as fit the
            op's cache budget); for tests that need chunk boundaries at small sizes.
        split: How the threads share a layer: ``rows`` (batch rows), ``columns`` (unit blocks,
            a barrier per step) or ``auto``: the one measured faster for this CPU build and the
            layer's shape class on its first call (``split_choice.py``). Outputs are the same.
        choices_folder: Where `auto` keeps its choices (default: the op's cache folder).

    Raises:
        NativeBuildError: the op cannot be built or loaded here (callers fall back).

    Example:
        >>> stack = NativeLSTMStack(weights)            # units [4, 5]
        >>> out = stack(x, return_gates=True)            # x (2, 3, 6)
        >>> out["layer_1/sequence"].shape, out["layer_0/gates/f"].shape
        (TensorShape([2, 3, 5]), TensorShape([2, 3, 4]))
    """

    def __init__(self, weights, max_threads: int = 0, chunk_steps: int = 0, split: str = "auto",
                 choices_folder=None):
        import tensorflow as tf

        loaded = load()
        self._op, width = loaded.module, loaded.width
        self.build = loaded.build.isa  # avx512, avx2, avx or portable: what this CPU runs
        self.max_threads = int(max_threads)
        self.chunk_steps = int(chunk_steps)
        if split not in ("auto", *SPLITS):
            raise ValueError(f"split must be one of auto, {', '.join(SPLITS)}; got {split!r}")
        self.split = split
        self._folder = choices_folder or loaded.build.path.parent
        self._splits = {}  # (layer, B, T) -> the split `auto` runs there
        self._layers = []
        for k in range(names.layer_count(weights)):
            kernel, recurrent, bias = (weights[names.array_name(k, p)]
                                       for p in ("kernel", "recurrent_kernel", "bias"))
            u = np.asarray(recurrent, np.float32)
            units = u.shape[0]
            self._layers.append((tf.constant(pack_kernel(kernel, units, width)),
                                 tf.constant(pack_bias(bias, units, width)),
                                 tf.constant(pack_kernel(u, units, width)),
                                 units))
        self.units = [layer[3] for layer in self._layers]

    def __call__(self, x, lengths=None, initial_state=None, return_gates=False):
        """Runs the stack.

        Args:
            x: (B, T, F) float32 inputs.
            lengths: Optional (B,) int valid lengths (None: every row runs all T steps).
            initial_state: Optional dict of ``layer_{k}/h``, ``layer_{k}/c`` (B, H_k); zeros
                where absent.
            return_gates: Also return ``layer_{k}/gates/{i,f,g,o}`` (B, T, H_k).

        Returns:
            Dict of ``layer_{k}/sequence`` (B, T, H_k), ``layer_{k}/h``, ``layer_{k}/c`` (B, H_k),
            plus the gates when asked: the keys and shapes of ``FusedLSTMStack.call``.
        """
        import tensorflow as tf

        x = tf.convert_to_tensor(x, tf.float32)
        batch, steps = tf.shape(x)[0], tf.shape(x)[1]
        lengths = (tf.fill([batch], steps) if lengths is None
                   else tf.cast(tf.convert_to_tensor(lengths), tf.int32))
        state, result, seq = initial_state or {}, {}, x
        for k, (kernel, bias, recurrent, units) in enumerate(self._layers):
            h0, c0 = (tf.zeros((batch, units)) if state.get(names.array_name(k, p)) is None
                      else tf.cast(state[names.array_name(k, p)], tf.float32) for p in (names.H, names.C))
            split = self._split_for(k, seq, (kernel, bias, recurrent), units)
            seq, h, c, *gates = self._op.lstm_exp_native_layer(
                seq, kernel, bias, recurrent, h0, c0, lengths, return_gates=bool(return_gates),
                max_threads=self.max_threads, chunk_steps=self.chunk_steps, split=split)
            result.update({names.array_name(k, names.SEQUENCE): seq, names.array_name(k, names.H): h,
                           names.array_name(k, names.C): c})
            if return_gates:
                result.update({names.gate_name(k, g): v for g, v in zip(GATES, gates, strict=True)})
        return result

    def _split_for(self, k, x, packed, units) -> str:
        """The split of layer k for input x: as asked, or `auto`'s (the row split where the batch
        or the steps are unknown while tracing)."""
        if self.split != "auto":
            return self.split
        batch, steps, features = x.shape
        if batch is None or steps is None:
            return BASELINE
        key = (k, batch, steps)
        if key not in self._splits:
            import tensorflow as tf

            # Python to run as is while tracing (AutoGraph would try to convert json's encoder).
            choose = tf.autograph.experimental.do_not_convert(choose_split)
            self._splits[key] = choose(self._op, self._folder, (batch, steps, features), packed,
                                       units, self.max_threads)
        return self._splits[key]
