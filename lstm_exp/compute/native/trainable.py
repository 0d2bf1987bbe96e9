"""The native LSTM op with its gradient: a trainable layer call, and a stack over Keras' variables.

Forward-training is the forward op (`LstmExpNativeLayer`) asked for its gates; the backward is one
op (`LstmExpNativeLayerGrad`) for the whole recurrence back through time, which returns the
pre-activation gradients dz of every step. What does not recur is left to TensorFlow's MatMul as
batched products over all steps at once:

    dx = dz W^T,   [dW; dR] = [x, h_prev]^T dz,   db = sum over rows and steps of dz

(h_prev: h0, then the layer's own sequence shifted by one step). The gradient is attached with
``tf.custom_gradient`` to a function of the keras-layout weights, which are packed into the op's
layouts inside it by TensorFlow ops, so `GradientTape`, Keras' optimizers and our training loop
see ordinary tensors and variables.
"""

from __future__ import annotations

from lstm_exp.config import names


def _pad_last(tensor, size: int):
    import tensorflow as tf

    pad = size - tensor.shape[-1]
    return tensor if pad == 0 else tf.pad(tensor, [[0, 0]] * (tensor.shape.rank - 1) + [[0, pad]])


def pack_kernel(kernel, units: int, width: int, gates: int = 4):
    """(K, gates H) keras layout -> (Hp/W, K, gates, W), as `engine.pack_kernel` does in NumPy
    (gates: 4 for the LSTM, 3 for the GRU)."""
    import tensorflow as tf

    depth, padded = kernel.shape[0], -(-units // width) * width
    blocks = _pad_last(tf.reshape(kernel, [depth, gates, units]), padded)
    return tf.transpose(tf.reshape(blocks, [depth, gates, padded // width, width]), [2, 0, 1, 3])


def pack_bias(bias, units: int, width: int, gates: int = 4):
    """(gates H,) keras layout -> (Hp/W, gates, W)."""
    return pack_kernel(bias[None, :], units, width, gates)[:, 0]


def pack_recurrent_transposed(recurrent, units: int, width: int, gates: int = 4):
    """(H, gates H) keras layout R -> R^T as (Hq/4W, gates Hp, 4W): the backward ops' panels for
    dh = dz R^T.

    Row k = gate * Hp + m of a panel is unit m of one gate's dz; its 4W columns are 4W consecutive
    outputs h_j. Hp pads the units to a multiple of W, Hq to one of 4W, with zeros.
    """
    import tensorflow as tf

    padded, block = -(-units // width) * width, 4 * width
    out = -(-units // block) * block
    rows = tf.reshape(_pad_last(tf.reshape(recurrent, [units, gates, units]), padded),
                      [units, gates * padded])
    rows = tf.pad(rows, [[0, out - units], [0, 0]])
    return tf.transpose(tf.reshape(rows, [out // block, block, gates * padded]), [0, 2, 1])


def lstm_layer(op, width: int, x, kernel, recurrent, bias, h0, c0, lengths, max_threads: int = 0,
               input_gradient: bool = True):
    """One LSTM layer by the native op, differentiable in x, the weights and the initial states.

    Args:
        op: the loaded op module (`engine.load().module`).
        width: its unit block width (`engine.load().width`).
        x: (B, T, F) float32; kernel (F, 4H), recurrent (H, 4H), bias (4H,): keras layout, gate
            order i, f, g, o; h0, c0: (B, H); lengths: (B,) int32 (TF1 semantics past a length).
        max_threads: threads per op (0: TensorFlow's intra-op pool size, capped by the batch).
        input_gradient: compute dx; without, x's gradient is zeros (for data, which nothing trains:
            saves the product dz W^T).

    Returns:
        (sequence (B, T, H), final h (B, H), final c (B, H)).
    """
    import tensorflow as tf

    units = recurrent.shape[0]

    @tf.custom_gradient
    def layer(x, kernel, recurrent, bias, h0, c0):
        seq, h, c, *gates = op.lstm_exp_native_layer(
            x, pack_kernel(kernel, units, width), pack_bias(bias, units, width),
            pack_kernel(recurrent, units, width), h0, c0, lengths, return_gates=True,
            max_threads=max_threads)

        def grad(d_seq, d_h, d_c):
            d_seq, d_h, d_c = (tf.zeros_like(v) if d is None else d
                               for d, v in ((d_seq, seq), (d_h, h), (d_c, c)))
            d_z, d_h0, d_c0 = op.lstm_exp_native_layer_grad(
                *gates, c0, pack_recurrent_transposed(recurrent, units, width), lengths, d_seq, d_h,
                d_c, max_threads=max_threads)
            batch, steps = tf.shape(x)[0], tf.shape(x)[1]
            flat = tf.reshape(d_z, [-1, 4 * units])  # (B*T, 4H): every step in one product
            h_prev = tf.concat([h0[:, None], seq[:, :-1]], axis=1)
            d_x = (tf.reshape(tf.matmul(flat, kernel, transpose_b=True), [batch, steps, -1])
                   if input_gradient else tf.zeros_like(x))
            # dW and dR as one product of [x, h_prev]: oneDNN's AVX2 GEMM ran xᵀ dz and h_prevᵀ dz
            # (256 rows each) at 43 GFLOP/s and the joined one (512 rows) at 98 (AMD EPYC, Zen 4,
            # capped to AVX2); with AVX-512 both ran at ~100. The copy costs ~1 ms.
            features = x.shape[-1]
            inputs = tf.concat([tf.reshape(x, [-1, features]), tf.reshape(h_prev, [-1, units])], 1)
            d_weights = tf.matmul(inputs, flat, transpose_a=True)  # (F + H, 4H)
            return (d_x, d_weights[:features], d_weights[features:], tf.reduce_sum(flat, axis=0),
                    d_h0, d_c0)

        return (seq, h, c), grad

    return layer(x, kernel, recurrent, bias, h0, c0)


class NativeTrainableStack:
    """A stack of plain LSTM or GRU layers whose variables are the stock Keras layers', run by the
    native ops (the GRU's: `gru_trainable.gru_layer`).

    The training loop keeps its `KerasStack` (its variables, their names, checkpoints and weights
    read back); only the computation changes. Returns the keys `KerasStack` returns.

    Args:
        layers: the Keras LSTM (or GRU) layers, layer 0 first (`KerasStack.layers.values()`).
        max_threads: threads per op (0: TensorFlow's intra-op pool size).
        cell: ``lstm`` or ``gru`` (`ModelSpec.cell`).

    Raises:
        NativeBuildError: the op cannot be built or loaded here.
    """

    def __init__(self, layers, max_threads: int = 0, cell: str = "lstm"):
        from lstm_exp.compute.native.engine import load

        loaded = load()
        self.build = loaded.build.isa
        self._op, self._width, self._layers = loaded.module, loaded.width, list(layers)
        self.max_threads = int(max_threads)
        self.cell = cell

    def __call__(self, x, lengths=None, initial_state=None):
        import tensorflow as tf

        x = tf.convert_to_tensor(x, tf.float32)
        batch, steps = tf.shape(x)[0], tf.shape(x)[1]
        lengths = (tf.fill([batch], steps) if lengths is None
                   else tf.cast(tf.convert_to_tensor(lengths), tf.int32))
        state, result, seq = initial_state or {}, {}, x
        for k, layer in enumerate(self._layers):
            cell, units = layer.cell, layer.cell.units
            if self.cell == "gru":
                seq, h = self._gru(k, cell, seq, state, lengths, batch)
                result.update({names.array_name(k, names.SEQUENCE): seq, names.array_name(k, names.H): h})
                continue
            h0, c0 = (tf.zeros((batch, units)) if state.get(names.array_name(k, p)) is None
                      else tf.cast(state[names.array_name(k, p)], tf.float32) for p in (names.H, names.C))
            seq, h, c = lstm_layer(self._op, self._width, seq, tf.convert_to_tensor(cell.kernel),
                                   tf.convert_to_tensor(cell.recurrent_kernel),
                                   tf.convert_to_tensor(cell.bias), h0, c0, lengths, self.max_threads,
                                   input_gradient=k > 0)  # layer 0's input is the data
            result.update({names.array_name(k, names.SEQUENCE): seq, names.array_name(k, names.H): h,
                           names.array_name(k, names.C): c})
        result[names.OUTPUT] = seq
        return result

    def _gru(self, k, cell, x, state, lengths, batch):
        import tensorflow as tf

        from lstm_exp.compute.native.gru_trainable import gru_layer

        h0 = state.get(names.array_name(k, names.H))
        h0 = tf.zeros((batch, cell.units)) if h0 is None else tf.cast(h0, tf.float32)
        return gru_layer(self._op, self._width, x, tf.convert_to_tensor(cell.kernel),
                         tf.convert_to_tensor(cell.recurrent_kernel), tf.convert_to_tensor(cell.bias),
                         h0, lengths, self.max_threads)
