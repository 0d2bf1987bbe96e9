"""A stack of plain GRU layers run forward by the native GRU op (``gru_forward.cc``), one op per layer.

The forward engine's counterpart of `engine.NativeLSTMStack` for `keras.layers.GRU` (reset_after=True)
weights: per layer one TensorFlow MatMul projects every step's input (x W + b, no recurrence), then
the op runs the recurrence. Variable lengths follow TF1 ``dynamic_rnn``: past a row's length its h is
carried and its outputs are zero. A GRU has no gate arrays (`names.GATES` are the LSTM's), so the op
is never asked for its gates here. Works eagerly and inside ``tf.function``.
"""

from __future__ import annotations

from lstm_exp.compute.native.gru_trainable import GRU_GATES
from lstm_exp.compute.native.trainable import pack_bias, pack_kernel
from lstm_exp.config import names


class NativeGRUStack:
    """Plain, unidirectional keras-layout GRU layers computed by the native op.

    Args:
        weights: ``layer_{k}/kernel`` (F_k, 3H_k), ``layer_{k}/recurrent_kernel`` (H_k, 3H_k),
            ``layer_{k}/bias`` (2, 3H_k), gate order z, r, h, for k = 0, 1, ...
        max_threads: Threads per layer (0: TensorFlow's intra-op pool size, capped by the batch).

    Raises:
        NativeBuildError: the op cannot be built or loaded here (callers fall back).

    Example:
        >>> stack = NativeGRUStack(weights)              # units [4, 5]
        >>> stack(x)["layer_1/sequence"].shape           # x (2, 3, 6)
        TensorShape([2, 3, 5])
    """

    def __init__(self, weights, max_threads: int = 0):
        import tensorflow as tf

        from lstm_exp.compute.native.engine import load

        loaded = load()
        self._op, width = loaded.module, loaded.width
        self.build = loaded.build.isa
        self.max_threads = int(max_threads)
        self._layers = []
        for k in range(names.layer_count(weights)):
            kernel, recurrent, bias = (tf.constant(weights[names.array_name(k, p)], tf.float32)
                                       for p in ("kernel", "recurrent_kernel", "bias"))
            units = recurrent.shape[0]
            self._layers.append((kernel, bias[0], pack_kernel(recurrent, units, width, GRU_GATES),
                                 pack_bias(bias[1], units, width, GRU_GATES), units))
        self.units = [layer[-1] for layer in self._layers]

    def __call__(self, x, lengths=None, initial_state=None):
        """Runs the stack on x (B, T, F) float32.

        Args:
            x: (B, T, F) inputs.
            lengths: Optional (B,) valid lengths (None: every row runs all T steps).
            initial_state: Optional dict of ``layer_{k}/h`` (B, H_k); zeros where absent.

        Returns:
            Dict of ``layer_{k}/sequence`` (B, T, H_k) and ``layer_{k}/h`` (B, H_k): the keys
            `KerasStack` returns for a GRU stack, less ``output``.
        """
        import tensorflow as tf

        x = tf.convert_to_tensor(x, tf.float32)
        batch, steps = tf.shape(x)[0], tf.shape(x)[1]
        lengths = (tf.fill([batch], steps) if lengths is None
                   else tf.cast(tf.convert_to_tensor(lengths), tf.int32))
        state, result, seq = initial_state or {}, {}, x
        for k, (kernel, bias, packed, packed_bias, units) in enumerate(self._layers):
            h0 = state.get(names.array_name(k, names.H))
            h0 = tf.zeros((batch, units)) if h0 is None else tf.cast(h0, tf.float32)
            projected = tf.reshape(tf.matmul(tf.reshape(seq, [-1, seq.shape[-1]]), kernel) + bias,
                                   [batch, steps, GRU_GATES * units])  # (B, T, 3H)
            seq, h, *_ = self._op.lstm_exp_native_gru_layer(
                projected, packed, packed_bias, h0, lengths, return_gates=False,
                max_threads=self.max_threads)
            result.update({names.array_name(k, names.SEQUENCE): seq, names.array_name(k, names.H): h})
        return result
