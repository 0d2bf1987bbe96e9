"""A stack of plain LSTM layers run by the native C++ op (``lstm_kernel.cc``), one op per layer.

Per layer: the input projection of every step is one TensorFlow MatMul, ``(B*T, F) @ (F, 4H)``;
the op then runs the time loop (recurrent product + cell) in C++. Everything stays batch-major,
so no transposes are needed. Works eagerly and inside ``tf.function``.

Variable lengths follow TF1 ``dynamic_rnn``: past a row's length its state is carried unchanged
and its outputs (sequence and gates) are zero.
"""

from __future__ import annotations

import ctypes
import functools
import os

import numpy as np

from lstm_exp.compute.native.build import DISABLE_ENV, NativeBuildError, library_path

GATES = ("i", "f", "g", "o")


@functools.cache
def _load_once(_env: tuple):
    """(op module, block width) or the NativeBuildError, once per process and environment."""
    try:
        import tensorflow as tf

        path = library_path()
        module = tf.load_op_library(str(path))
        width = int(ctypes.CDLL(str(path)).lstm_exp_native_block_width())
    except NativeBuildError as err:
        return err
    except Exception as err:  # noqa: BLE001 - a broken load must fall back, whatever it raises
        return NativeBuildError(f"loading the native LSTM op failed: {type(err).__name__}: {err}")
    return module, width


def load():
    """The loaded op module and the unit block width its U packing uses.

    Raises:
        NativeBuildError: the op cannot be built or loaded here.
    """
    env = tuple(os.environ.get(name) for name in (DISABLE_ENV, "CXX", "XDG_CACHE_HOME"))
    loaded = _load_once(env)
    if isinstance(loaded, NativeBuildError):
        raise loaded
    return loaded


def pack_recurrent_kernel(u: np.ndarray, width: int) -> np.ndarray:
    """(H, 4H) keras-layout U -> (Hp/W, H, 4, W), units zero-padded to Hp, a multiple of W.

    Each W-unit block then holds its 4 gate slices contiguously per input unit k: the panel the
    kernel streams while one register tile accumulates.
    """
    units = u.shape[0]
    padded = -(-units // width) * width
    gates = np.zeros((units, 4, padded), np.float32)
    gates[:, :, :units] = np.asarray(u, np.float32).reshape(units, 4, units)
    return np.ascontiguousarray(gates.reshape(units, 4, padded // width, width).transpose(2, 0, 1, 3))


class NativeLSTMStack:
    """Plain, unidirectional keras-layout LSTM layers computed by the native op.

    Args:
        weights: ``layer_{k}/kernel`` (F_k, 4H_k), ``layer_{k}/recurrent_kernel`` (H_k, 4H_k),
            ``layer_{k}/bias`` (4H_k,), gate order i, f, g, o, for k = 0, 1, ...
        max_threads: Threads per layer (0: TensorFlow's intra-op pool size, capped by the batch).

    Raises:
        NativeBuildError: the op cannot be built or loaded here (callers fall back).

    Example:
        >>> stack = NativeLSTMStack(weights)            # units [4, 5]
        >>> out = stack(x, return_gates=True)            # x (2, 3, 6)
        >>> out["layer_1/sequence"].shape, out["layer_0/gates/f"].shape
        (TensorShape([2, 3, 5]), TensorShape([2, 3, 4]))
    """

    def __init__(self, weights, max_threads: int = 0):
        import tensorflow as tf

        self._op, width = load()
        self.max_threads = int(max_threads)
        num_layers = sum(key.endswith("/recurrent_kernel") for key in weights)
        self._layers = []
        for k in range(num_layers):
            u = np.asarray(weights[f"layer_{k}/recurrent_kernel"], np.float32)
            self._layers.append((tf.constant(np.asarray(weights[f"layer_{k}/kernel"], np.float32)),
                                 tf.constant(pack_recurrent_kernel(u, width)),
                                 tf.constant(np.asarray(weights[f"layer_{k}/bias"], np.float32)),
                                 u.shape[0]))
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
        for k, (kernel, packed, bias, units) in enumerate(self._layers):
            # All T steps in one GEMM: (B*T, F) @ (F, 4H) -> (B, T, 4H), bias included.
            xp = tf.nn.bias_add(tf.matmul(tf.reshape(seq, (-1, kernel.shape[0])), kernel), bias)
            xp = tf.reshape(xp, (batch, steps, 4 * units))
            h0, c0 = (tf.zeros((batch, units)) if state.get(f"layer_{k}/{p}") is None
                      else tf.cast(state[f"layer_{k}/{p}"], tf.float32) for p in "hc")
            seq, h, c, *gates = self._op.lstm_exp_native_layer(
                xp, packed, h0, c0, lengths, return_gates=bool(return_gates),
                max_threads=self.max_threads)
            result.update({f"layer_{k}/sequence": seq, f"layer_{k}/h": h, f"layer_{k}/c": c})
            if return_gates:
                result.update({f"layer_{k}/gates/{g}": v for g, v in zip(GATES, gates, strict=True)})
        return result
