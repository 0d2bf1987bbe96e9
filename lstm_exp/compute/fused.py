"""Fused multi-layer LSTM stack for CPU inference (TensorFlow backend).

Computes a stack of keras-layout LSTM layers (gate order i, f, g, o) in one
compiled function:

* the input projection of all time steps is one GEMM outside the time loop,
  so only recurrent products stay inside it;
* ``schedule="wavefront"`` runs layer k at step t together with layer k+1 at
  step t-1 in one loop: their products are independent, so the graph executor
  runs them on different cores (the price: layers above the first project their
  input inside the loop);
* ``schedule="layerwise"`` runs one loop per layer with every projection hoisted.

``schedule="auto"`` picks layerwise under XLA and wavefront in a plain graph.
Why (2-core CPU shared with other jobs, B=32 T=128 units [256, 256], medians
from scripts/bench_forward.py): the wavefront's overlap needs both cores free.
Under XLA it won only on an idle machine (36 vs 40 ms) and lost by ~5% to
layerwise otherwise, and at B=64 T=256 units [512, 512]; in a graph it beat
layerwise by 1.05-1.35x, most with intra-op threads set to 1 (30 vs 51 ms).

Variable lengths follow TF1 ``dynamic_rnn``: past a row's length its state is
carried unchanged and its outputs (sequence and gates) are zero.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from lstm_exp.config import names  # noqa: E402
from lstm_exp.config.names import GATES, layer_count  # noqa: E402

SCHEDULES = ("auto", "wavefront", "layerwise")
_PARTS = ("kernel", "recurrent_kernel", "bias")


def _dim(x, axis):
    """Static size of ``axis`` when known, else the dynamic one."""
    return x.shape[axis] if x.shape[axis] is not None else tf.shape(x)[axis]


def _cell(z, c):
    """One LSTM update from pre-activations z (B, 4H) and cell state c (B, H).

    Returns:
        (h, c, (i, f, g, o)), every tensor (B, H).
    """
    units = c.shape[-1]
    # Why: under XLA on CPU, tf.split into four (B, H) lane slices fed to
    # separate transcendentals measured 3.5x slower (72 vs 20 us/step) than one
    # sigmoid over the contiguous (B, 4, H) block; the wasted g slab is cheaper.
    a = tf.sigmoid(tf.reshape(z, (-1, 4, units)))  # (B, 4, H)
    i, f, o = a[:, 0], a[:, 1], a[:, 3]
    g = tf.tanh(z[:, 2 * units : 3 * units])  # (B, H)
    c = f * c + i * g
    return o * tf.tanh(c), c, (i, f, g, o)


def _run_group(xp, layers, lengths, states, return_gates):
    """Runs consecutive layers as a wavefront in one time loop.

    Args:
        xp: Projected input of the group's first layer, bias included, (T, B, 4H_0).
        layers: [(kernel (F_k, 4H_k), recurrent_kernel (H_k, 4H_k), bias (4H_k,))].
        lengths: (B,) int32 valid lengths, or None for all T.
        states: [(h, c)] initial states, each (B, H_k).
        return_gates: Also collect the gate activations.

    Returns:
        [(sequence (T, B, H_k), h, c, gates (T, B, 4, H_k) or None)] per layer.
    """
    n, steps = len(layers), _dim(xp, 0)
    total = steps + n - 1  # layer k runs k loop steps behind layer 0
    # Only a wavefront edge or a short row needs the per-row mask.
    masked = lengths is not None or n > 1
    if lengths is None:
        lengths = tf.fill([_dim(xp, 1)], steps)

    def new_ta(shape):  # one (T+n-1)-slot buffer per output
        return tf.TensorArray(tf.float32, size=total, element_shape=shape)
    hs, cs = tuple(s[0] for s in states), tuple(s[1] for s in states)
    seq_tas = tuple(new_ta(h.shape) for h in hs)
    gate_tas = tuple(new_ta([h.shape[0], 4, h.shape[1]]) for h in hs) if return_gates else ()

    def body(s, hs, cs, seq_tas, gate_tas):
        # Layer k reads layer k-1's h from the previous loop step (both at time s-k), so
        # all products below depend only on the loop carry and can run concurrently.
        # Past T, layer 0 re-reads step T-1 (masked) rather than padding a copy of xp.
        zs = [xp[tf.minimum(s, steps - 1)] + tf.matmul(hs[0], layers[0][1])]  # (B, 4H_0)
        zs += [tf.matmul(hs[k - 1], layers[k][0]) + tf.matmul(hs[k], layers[k][1])
               + layers[k][2] for k in range(1, n)]  # (B, 4H_k)
        new_h, new_c, new_seq, new_gates = [], [], [], []
        for k in range(n):
            h, c, gates = _cell(zs[k], cs[k])
            out = h
            if masked:
                t = s - k
                m = ((t >= 0) & (t < lengths))[:, None]  # (B, 1)
                h, c, out = tf.where(m, h, hs[k]), tf.where(m, c, cs[k]), tf.where(m, h, 0.0)
            new_h.append(h)
            new_c.append(c)
            new_seq.append(seq_tas[k].write(s, out))
            if return_gates:
                g = tf.stack(gates, axis=1)  # (B, 4, H)
                new_gates.append(gate_tas[k].write(s, tf.where(m[:, :, None], g, 0.0)
                                                   if masked else g))
        return s + 1, tuple(new_h), tuple(new_c), tuple(new_seq), tuple(new_gates)

    _, hs, cs, seq_tas, gate_tas = tf.while_loop(
        lambda s, *_: s < total, body, (0, hs, cs, seq_tas, gate_tas))
    return [(seq_tas[k].stack()[k : k + steps], hs[k], cs[k],  # drop the edge steps
             gate_tas[k].stack()[k : k + steps] if return_gates else None) for k in range(n)]


def _forward(x, lengths, init_h, init_c, layers, schedule, return_gates):
    """Whole-stack forward pass; see ``FusedLSTMStack.call`` for the contract."""
    x_tm = tf.transpose(x, [1, 0, 2])  # (T, B, F): transpose the narrow input, not (B, T, 4H)
    steps, batch = _dim(x_tm, 0), _dim(x_tm, 1)
    lengths = None if lengths is None else tf.cast(lengths, tf.int32)
    n = len(layers)
    groups = [range(n)] if schedule == "wavefront" else [[k] for k in range(n)]
    result, seq = {}, x_tm
    for group in groups:
        kernel, _, bias = layers[group[0]]
        # All T steps in one GEMM: (T*B, F) @ (F, 4H) -> (T, B, 4H).
        xp = tf.reshape(tf.matmul(tf.reshape(seq, (-1, kernel.shape[0])), kernel),
                        (steps, batch, kernel.shape[1])) + bias
        states = []
        for k in group:
            zeros = tf.zeros((batch, layers[k][1].shape[0]))  # (B, H_k)
            states.append(tuple(zeros if s[k] is None
                                else tf.ensure_shape(tf.cast(s[k], tf.float32), zeros.shape)
                                for s in (init_h, init_c)))
        outs = _run_group(xp, [layers[k] for k in group], lengths, states, return_gates)
        for k, (seq, h, c, gates) in zip(group, outs, strict=True):
            result[names.array_name(k, names.SEQUENCE)] = tf.transpose(seq, [1, 0, 2])  # (B, T, H)
            result[names.array_name(k, names.H)], result[names.array_name(k, names.C)] = h, c
            if return_gates:
                gates = tf.unstack(tf.transpose(gates, [2, 1, 0, 3]))  # 4 x (B, T, H)
                result.update({names.gate_name(k, g): v for g, v in zip(GATES, gates, strict=True)})
    return result


_COMPILED: dict = {}


def compiled_forward(schedule="auto", jit_compile=True):
    """The process-wide ``tf.function`` of one schedule, traced (and XLA-compiled) once per
    input shape signature: ``fn(x, lengths, init_h, init_c, layers, return_gates)`` with
    ``init_h``/``init_c`` tuples of (B, H_k) or None, ``layers`` ((W, U, b), ...)."""
    if schedule not in SCHEDULES:
        raise ValueError(f"schedule must be one of {SCHEDULES}, got {schedule!r}")
    if schedule == "auto":
        schedule = "layerwise" if jit_compile else "wavefront"
    key = schedule + ("_xla" if jit_compile else "")
    if key not in _COMPILED:
        def fn(x, lengths, init_h, init_c, layers, return_gates):
            return _forward(x, lengths, init_h, init_c, layers, schedule, return_gates)
        _COMPILED[key] = tf.function(fn, jit_compile=bool(jit_compile))
    return _COMPILED[key]


def _split_states(state, num_layers, convert=lambda v: v):
    """``layer_{k}/h``, ``layer_{k}/c`` dict -> (h tuple, c tuple); None where absent."""
    state = state or {}
    return tuple(tuple(None if state.get(names.array_name(k, p)) is None
                       else convert(state[names.array_name(k, p)]) for k in range(num_layers))
                 for p in (names.H, names.C))


class FusedLSTMStack(keras.layers.Layer):
    """A stack of LSTM layers computed by one fused, compiled function.

    Args:
        units: Hidden size of each layer, bottom first.
        schedule: ``"auto"``, ``"wavefront"`` or ``"layerwise"`` (see the module docstring).
        jit_compile: Compile with XLA (default: fastest steady state, ~0.5 s to compile) or
            run as a plain graph (~0.15 s to trace; the better choice for a few calls).
        weights: Optional dict in keras layout, see ``set_weights_dict``.
    """

    def __init__(self, units, schedule="auto", jit_compile=True, weights=None, **kwargs):
        super().__init__(**kwargs)
        self.units, self.schedule, self.jit_compile = [int(u) for u in units], schedule, jit_compile
        self._fn = compiled_forward(schedule, jit_compile)
        if weights is not None:
            self.set_weights_dict(weights)

    def build(self, input_shape):
        feats, self._cells = input_shape[-1], []
        for k, units in enumerate(self.units):
            # keras.layers.LSTM's defaults, unit_forget_bias included.
            inits = ("glorot_uniform", "orthogonal", lambda shape, dtype=None, u=units: tf.concat(
                [tf.zeros((u,)), tf.ones((u,)), tf.zeros((2 * u,))], 0))
            shapes = ((feats, 4 * units), (units, 4 * units), (4 * units,))
            name = names.layer_name(k)
            self._cells.append(tuple(self.add_weight(shape=s, initializer=i, name=f"{name}_{p}")
                                     for s, i, p in zip(shapes, inits, _PARTS, strict=True)))
            feats = units
        self.built = True

    def set_weights_dict(self, weights):
        """Assigns ``layer_{k}/kernel`` (F_k, 4H), ``/recurrent_kernel`` (H, 4H), ``/bias`` (4H,)."""
        if not self.built:
            self.build((None, None, np.shape(weights[names.array_name(0, "kernel")])[0]))
        for k, cell in enumerate(self._cells):
            for var, part in zip(cell, _PARTS, strict=True):
                var.assign(np.asarray(weights[names.array_name(k, part)], np.float32))

    def get_weights_dict(self):
        """The weights as a dict of numpy arrays in the same layout."""
        return {names.array_name(k, p): np.asarray(v.numpy())
                for k, cell in enumerate(self._cells) for v, p in zip(cell, _PARTS, strict=True)}

    def call(self, x, lengths=None, initial_state=None, return_gates=False):
        """Runs the stack.

        Args:
            x: (B, T, F) float32 inputs.
            lengths: Optional (B,) int valid lengths.
            initial_state: Optional dict of ``layer_{k}/h``, ``layer_{k}/c`` (B, H_k); zeros
                where absent.
            return_gates: Also return ``layer_{k}/gates/{i,f,g,o}`` (B, T, H_k).

        Returns:
            Dict of ``layer_{k}/sequence`` (B, T, H_k), ``layer_{k}/h`` and ``layer_{k}/c``
            (B, H_k), plus the gates when asked.
        """
        # Tensors, not variables: traces are then shared by every instance of equal shapes.
        layers = tuple(tuple(tf.convert_to_tensor(v) for v in cell) for cell in self._cells)
        init_h, init_c = _split_states(initial_state, len(self.units))
        lengths = None if lengths is None else tf.cast(lengths, tf.int32)
        return self._fn(tf.cast(x, tf.float32), lengths, init_h, init_c, layers,
                        bool(return_gates))


def fused_forward(weights, x, lengths=None, initial_state=None, return_gates=False,
                  schedule="auto", jit_compile=True):
    """NumPy-in, NumPy-out forward pass of a keras-layout LSTM stack.

    Args:
        weights: ``layer_{k}/kernel``, ``/recurrent_kernel``, ``/bias`` for k = 0, 1, ...
        x, lengths, initial_state, return_gates: As for ``FusedLSTMStack.call``.
        schedule, jit_compile: As for ``FusedLSTMStack``.

    Returns:
        Dict of numpy float32 arrays, keys as for ``FusedLSTMStack.call``.
    """
    num_layers = layer_count(weights)
    layers = tuple(tuple(np.asarray(weights[names.array_name(k, p)], np.float32) for p in _PARTS)
                   for k in range(num_layers))
    init_h, init_c = _split_states(initial_state, num_layers, lambda v: np.asarray(v, np.float32))
    out = compiled_forward(schedule, jit_compile)(
        np.asarray(x, np.float32), None if lengths is None else np.asarray(lengths, np.int32),
        init_h, init_c, layers, bool(return_gates))
    return {k: v.numpy() for k, v in out.items()}
