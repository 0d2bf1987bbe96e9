"""One GRU layer by the native ops, differentiable: Keras 3's `keras.layers.GRU` (reset_after=True).

The input projection a = x W + b (b: the bias' first row) has no recurrence: it is one TensorFlow
MatMul over all steps, before the op, and TensorFlow differentiates it itself (dx = da W^T,
dW = x^T da, db = sum da, batched over every step). The recurrence is one op each way:
`LstmExpNativeGruLayer` (gru_forward.cc) forward, asked for its gates, and
`LstmExpNativeGruLayerGrad` (gru_backward.cc) back through time, which returns da and the
recurrent part's pre-activation gradients dq; then dU = h_prev^T dq and db' = sum dq are two more
batched products. The gradient is attached with ``tf.custom_gradient`` to a function of the
keras-layout weights, so `GradientTape` and Keras' optimizers see ordinary tensors and variables.
"""

from __future__ import annotations

from lstm_exp.compute.native.trainable import pack_bias, pack_kernel, pack_recurrent_transposed

GRU_GATES = 3  # z, r, h


def gru_layer(op, width: int, x, kernel, recurrent, bias, h0, lengths, max_threads: int = 0):
    """One GRU layer by the native ops, differentiable in x, the weights and the initial state.

    Args:
        op: the loaded op module (`engine.load().module`).
        width: its unit block width (`engine.load().width`).
        x: (B, T, F) float32; kernel (F, 3H), recurrent (H, 3H), bias (2, 3H): keras layout, gate
            order z, r, h, bias rows input and recurrent; h0: (B, H); lengths: (B,) int32 (TF1
            semantics past a length: h carried, outputs zero).
        max_threads: threads per op (0: TensorFlow's intra-op pool size, capped by the batch).

    Returns:
        (sequence (B, T, H), final h (B, H)).
    """
    import tensorflow as tf

    units = recurrent.shape[0]
    batch, steps = tf.shape(x)[0], tf.shape(x)[1]
    projected = tf.reshape(tf.matmul(tf.reshape(x, [-1, x.shape[-1]]), kernel) + bias[0],
                           [batch, steps, GRU_GATES * units])  # (B, T, 3H)

    @tf.custom_gradient
    def recurrence(projected, recurrent, bias_recurrent, h0):
        seq, h, *gates = op.lstm_exp_native_gru_layer(
            projected, pack_kernel(recurrent, units, width, GRU_GATES),
            pack_bias(bias_recurrent, units, width, GRU_GATES), h0, lengths, return_gates=True,
            max_threads=max_threads)

        def grad(d_seq, d_h):
            d_seq, d_h = (tf.zeros_like(v) if d is None else d for d, v in ((d_seq, seq), (d_h, h)))
            d_projected, d_q, d_h0 = op.lstm_exp_native_gru_layer_grad(
                *gates, h0, seq, pack_recurrent_transposed(recurrent, units, width, GRU_GATES),
                lengths, d_seq, d_h, max_threads=max_threads)
            flat = tf.reshape(d_q, [-1, GRU_GATES * units])  # (B*T, 3H): every step in one product
            h_prev = tf.concat([h0[:, None], seq[:, :-1]], axis=1)
            d_recurrent = tf.matmul(tf.reshape(h_prev, [-1, units]), flat, transpose_a=True)
            return d_projected, d_recurrent, tf.reduce_sum(flat, axis=0), d_h0

        return (seq, h), grad

    return recurrence(projected, recurrent, bias[1], h0)
