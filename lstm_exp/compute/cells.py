"""A Keras 3 RNN cell with TF1 `LSTMCell`'s extras: peepholes, cell clipping and a projection.

Equations (keras gate order i, f, c, o; the bias already holds any forget bias):
    z = x W + h_{t-1} U + b                                   # (B, 4C)
    i = σ(z_i + p_i c_{t-1});  f = σ(z_f + p_f c_{t-1});  g = tanh(z_c)
    c_t = clip(f c_{t-1} + i g, ±cell_clip)
    o = σ(z_o + p_o c_t)                                      # o sees the new c, as in TF1
    h_t = clip((o tanh(c_t)) P, ±proj_clip)                   # (B, P), or (B, C) without P
"""

import keras
from keras import ops


def _unit_forget_bias(shape, dtype=None):
    # Keras's unit_forget_bias: ones on the forget slice, zeros elsewhere.
    units = shape[0] // 4
    return ops.concatenate(
        [ops.zeros((units,), dtype), ops.ones((units,), dtype), ops.zeros((2 * units,), dtype)]
    )


@keras.saving.register_keras_serializable(package="lstm_exp")
class TF1LSTMCell(keras.layers.Layer):
    """One step of TF1's `LSTMCell`, for `keras.layers.RNN` and `keras.layers.StackedRNNCells`.

    Args:
        units: C, the size of the cell state.
        peepholes: TF1 `use_peepholes`; adds `peephole_i`, `peephole_f`, `peephole_o` (C,).
        cell_clip: TF1 `cell_clip`; None leaves c unclipped.
        proj_size: TF1 `num_proj` (PyTorch `proj_size`); adds `projection` (C, P) and h becomes (B, P).
        proj_clip: TF1 `proj_clip`, applied to the projected h; needs `proj_size`.
        return_gates: True (default) makes each step's output `[h | i | f | g | o]`, (B, P + 4C), so
            that a stack can report the gates; False gives h alone, as a cell inside
            `StackedRNNCells` needs.

    Weights, named as in Keras's `LSTMCell` plus the extras: `kernel` (F, 4C), `recurrent_kernel`
    (H, 4C) with H = P or C, `bias` (4C,), `peephole_{i,f,o}` (C,), `projection` (C, P).
    The state is `[h (B, H), c (B, C)]`.

    Example:
        >>> layer = keras.layers.RNN(TF1LSTMCell(4, peepholes=True, proj_size=3), return_state=True)
        >>> [t.shape for t in layer(np.zeros((2, 3, 6), "float32"))]
        [TensorShape([2, 19]), TensorShape([2, 3]), TensorShape([2, 4])]
    """

    def __init__(
        self,
        units: int,
        peepholes: bool = False,
        cell_clip: float | None = None,
        proj_size: int | None = None,
        proj_clip: float | None = None,
        return_gates: bool = True,
        **kwargs,
    ):
        super().__init__(**kwargs)
        for name, value in (("units", units), ("proj_size", proj_size or 1)):
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValueError(f"{name} must be a positive integer. Received: {name}={value}")
        if proj_clip and not proj_size:
            raise ValueError(f"proj_clip needs proj_size. Received: proj_clip={proj_clip}, proj_size=None")
        self.units, self.peepholes, self.return_gates = units, bool(peepholes), bool(return_gates)
        self.cell_clip, self.proj_size, self.proj_clip = cell_clip, proj_size, proj_clip
        hidden = proj_size or units
        self.state_size = [hidden, units]
        self.output_size = hidden + 4 * units if return_gates else hidden

    def build(self, input_shape):
        gates = 4 * self.units
        self.kernel = self.add_weight(
            shape=(input_shape[-1], gates), initializer="glorot_uniform", name="kernel"
        )
        self.recurrent_kernel = self.add_weight(
            shape=(self.state_size[0], gates), initializer="orthogonal", name="recurrent_kernel"
        )
        self.bias = self.add_weight(shape=(gates,), initializer=_unit_forget_bias, name="bias")
        if self.peepholes:
            self.peephole = {
                g: self.add_weight(shape=(self.units,), initializer="glorot_uniform", name=f"peephole_{g}")
                for g in ("i", "f", "o")
            }
        if self.proj_size:
            self.projection = self.add_weight(
                shape=(self.units, self.proj_size), initializer="glorot_uniform", name="projection"
            )
        self.built = True

    def call(self, inputs, states):
        h_prev, c_prev = states[0], states[1]
        z = ops.matmul(inputs, self.kernel) + ops.matmul(h_prev, self.recurrent_kernel) + self.bias
        z_i, z_f, z_g, z_o = ops.split(z, 4, axis=-1)  # 4 x (B, C)
        if self.peepholes:
            z_i = z_i + self.peephole["i"] * c_prev
            z_f = z_f + self.peephole["f"] * c_prev
        i, f, g = ops.sigmoid(z_i), ops.sigmoid(z_f), ops.tanh(z_g)
        c = f * c_prev + i * g
        if self.cell_clip:
            c = ops.clip(c, -self.cell_clip, self.cell_clip)
        o = ops.sigmoid(z_o + self.peephole["o"] * c if self.peepholes else z_o)
        h = o * ops.tanh(c)
        if self.proj_size:
            h = ops.matmul(h, self.projection)  # (B, P)
            if self.proj_clip:
                h = ops.clip(h, -self.proj_clip, self.proj_clip)
        output = ops.concatenate([h, i, f, g, o], axis=-1) if self.return_gates else h
        return output, [h, c]

    def get_initial_state(self, batch_size=None):
        """Zero h (B, H) and c (B, C)."""
        return [ops.zeros((batch_size, size), dtype=self.compute_dtype) for size in self.state_size]

    def get_config(self):
        config = {
            "units": self.units,
            "peepholes": self.peepholes,
            "cell_clip": self.cell_clip,
            "proj_size": self.proj_size,
            "proj_clip": self.proj_clip,
            "return_gates": self.return_gates,
        }
        return {**super().get_config(), **config}
