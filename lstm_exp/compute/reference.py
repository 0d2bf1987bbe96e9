"""NumPy re-computation of the cells' equations, in float64, independent of TensorFlow.

Every run is checked against this: same weights (keras layout), same input, lengths and initial
states; `reference_max_abs_err` is the largest difference over the arrays both sides produced.
Batch rows are independent, so the runner's check (`check_max_abs_err`) computes them a chunk of
rows at a time, into float64 arrays allocated once per chunk, and keeps only each array's running
maximum error: its memory is `config.memory.CHECK_BUDGET_BYTES`, whatever the run's size (but at
least one row). `reference_forward` is the same computation over all rows at once.

Equations (keras gate order; TF1 `LSTMCell` extras where the spec asks for them):
    LSTM        z = x W + h U + b;  i, f = σ(z_i + p_i c, z_f + p_f c);  g = tanh(z_g)
                c_new = clip(f c + i g);  o = σ(z_o + p_o c_new);  h = clip(o tanh(c_new) P)
    GRU         (reset_after)  z, r = σ(x W_z + b_z + h U_z + b'_z, ...)
                n = tanh(x W_n + b_n + r (h U_n + b'_n));  h = z h + (1 - z) n
    SimpleRNN   h = tanh(x W + h U + b)
"""

from collections.abc import Mapping

import numpy as np

from lstm_exp.config import names
from lstm_exp.config.memory import CHECK_BUDGET_BYTES, check_rows
from lstm_exp.config.names import GATES
from lstm_exp.config.specs import ModelSpec
from lstm_exp.config.validate import expected_shapes


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-z))


def _lstm_step(spec, w, x_t, h, c):
    z = x_t @ w["kernel"] + h @ w["recurrent_kernel"] + w["bias"]  # (B, 4C)
    z_i, z_f, z_g, z_o = np.split(z, 4, axis=-1)
    if spec.peepholes:
        z_i, z_f = z_i + w["peephole_i"] * c, z_f + w["peephole_f"] * c
    i, f, g = _sigmoid(z_i), _sigmoid(z_f), np.tanh(z_g)
    c_new = f * c + i * g
    if spec.cell_clip:
        c_new = np.clip(c_new, -spec.cell_clip, spec.cell_clip)
    o = _sigmoid(z_o + w["peephole_o"] * c_new if spec.peepholes else z_o)
    h_new = o * np.tanh(c_new)
    if spec.proj_size:
        h_new = h_new @ w["projection"]
        if spec.proj_clip:
            h_new = np.clip(h_new, -spec.proj_clip, spec.proj_clip)
    return h_new, c_new, (i, f, g, o)


def _gru_step(w, x_t, h):
    bias_in, bias_rec = w["bias"]  # (3H,), (3H,)
    xz, xr, xn = np.split(x_t @ w["kernel"] + bias_in, 3, axis=-1)
    hz, hr, hn = np.split(h @ w["recurrent_kernel"] + bias_rec, 3, axis=-1)
    z, r = _sigmoid(xz + hz), _sigmoid(xr + hr)
    n = np.tanh(xn + r * hn)
    return z * h + (1.0 - z) * n


def _run_direction(spec, w, seq, mask, order, h, c, out):
    """Steps one direction over (b, T, F), writing each step into `out`'s preallocated (b, T, .) arrays.

    `order[:, t]` is the position row b reads and writes at step t: t forward, and for the backward
    direction `lengths[b] - 1 - t` within the row's length (TF1 reverse_sequence), t past it.
    Masked steps carry the state and write zeros. Returns the final (h, c).
    """
    rows = np.arange(seq.shape[0])
    for t in range(seq.shape[1]):
        valid = mask[:, t : t + 1]  # (b, 1)
        where = (rows, order[:, t])
        x_t = seq[where]  # (b, F)
        if spec.cell == "lstm":
            h_new, c_new, gate_values = _lstm_step(spec, w, x_t, h, c)
            c = np.where(valid, c_new, c)
            for gate, value in zip(GATES, gate_values, strict=True):
                out[names.gate_part(gate)][where] = np.where(valid, value, 0.0)
        elif spec.cell == "gru":
            h_new = _gru_step(w, x_t, h)
        else:
            h_new = np.tanh(x_t @ w["kernel"] + h @ w["recurrent_kernel"] + w["bias"])
        h = np.where(valid, h_new, h)
        out[names.SEQUENCE][where] = np.where(valid, h_new, 0.0)
    return h, c


def _forward_rows(spec, weights, x, lengths, initial_state) -> dict[str, np.ndarray]:
    """The whole stack over the rows of x (b, T, F), into float64 arrays allocated up front."""
    batch, steps, features = x.shape
    shapes = expected_shapes(spec, batch, steps, features, one_step=False)
    arrays = {n: np.zeros(s) for n, s in shapes.items() if n not in (names.INPUT, names.OUTPUT)}
    mask = np.arange(steps)[None, :] < lengths[:, None]  # (b, T)
    forward = np.broadcast_to(np.arange(steps), (batch, steps))
    backward = np.where(mask, lengths[:, None] - 1 - forward, forward)
    seq = x.astype(np.float64)
    for k, units in enumerate(spec.units):
        layer_seq = arrays[names.array_name(k, names.SEQUENCE)]  # (b, T, H_k): the directions side by side
        width = spec.hidden_size(k)
        for n, d in enumerate(spec.directions):
            pre = names.layer_prefix(k, d)
            w = {m[len(pre) :]: v.astype(np.float64) for m, v in weights.items() if m.startswith(pre)}
            h0 = initial_state.get(pre + names.H, np.zeros((batch, width)))
            c0 = initial_state.get(pre + names.C, np.zeros((batch, units)))
            out = {names.SEQUENCE: layer_seq[..., n * width : (n + 1) * width]}
            if spec.cell == "lstm":
                out.update({names.gate_part(g): arrays[names.gate_name(k, g, d)] for g in GATES})
            order = backward if d == names.BACKWARD else forward
            h, c = _run_direction(spec, w, seq, mask, order, np.asarray(h0, np.float64),
                                  np.asarray(c0, np.float64), out)
            ends = {names.H: h, names.C: c} if spec.cell == "lstm" else {names.H: h}
            for part, value in ends.items():
                if spec.bidirectional:
                    arrays[names.array_name(k, part, d)][...] = value
                arrays[names.array_name(k, part)][:, n * value.shape[1] : (n + 1) * value.shape[1]] = value
        seq = layer_seq
    arrays[names.OUTPUT] = seq
    return arrays


def _row_inputs(x, lengths, initial_state):
    batch, steps, _ = x.shape
    lengths = np.full(batch, steps) if lengths is None else np.asarray(lengths)
    return lengths, dict(initial_state or {})


def reference_forward(
    spec: ModelSpec,
    weights: dict[str, np.ndarray],
    x: np.ndarray,
    lengths: np.ndarray | None = None,
    initial_state: dict[str, np.ndarray] | None = None,
) -> dict[str, np.ndarray]:
    """Runs the whole stack in float64 over every row at once and returns the runner's array names.

    Args:
        spec: the validated model.
        weights: keras layout (`layer_{k}/kernel`, ..., `layer_{k}/fw/kernel` when bidirectional).
        x: input of shape (B, T, F).
        lengths: (B,) valid steps per row; None means all T.
        initial_state: `layer_{k}/[fw/|bw/]{h,c}` arrays; missing ones are zeros.

    Returns:
        `layer_{k}/sequence`, `layer_{k}/h`, `layer_{k}/c`, `layer_{k}/[fw/|bw/]gates/{i,f,g,o}`,
        the per-direction states when bidirectional, and `output` (B, T, H_last).
    """
    lengths, initial_state = _row_inputs(x, lengths, initial_state)
    return _forward_rows(spec, weights, x, lengths, initial_state)


def check_max_abs_err(
    spec: ModelSpec,
    weights: dict[str, np.ndarray],
    x: np.ndarray,
    actual: Mapping[str, np.ndarray],
    lengths: np.ndarray | None = None,
    initial_state: dict[str, np.ndarray] | None = None,
    budget_bytes: int = CHECK_BUDGET_BYTES,
) -> float:
    """`max_abs_err(actual, reference_forward(...))`, computed a chunk of batch rows at a time.

    Each chunk's float64 arrays (`config.memory.check_rows` rows of them, within `budget_bytes`)
    are compared in place against the same rows of `actual` and dropped; only the largest error is
    kept. Same arrays and the same result as the whole-array computation, up to float64 rounding
    (a product over fewer rows may round its last bit differently: ~1e-16, against tolerances of 1e-6).

    Example:
        >>> check_max_abs_err(spec, weights, x, engine_arrays)  # x: (32, 2048, 64), 64 MiB at a time
        3.1e-07
    """
    lengths, initial_state = _row_inputs(x, lengths, initial_state)
    step = check_rows(expected_shapes(spec, *x.shape, one_step=False), budget_bytes)
    worst = 0.0
    for first in range(0, x.shape[0], step):
        rows = slice(first, first + step)
        state = {n: v[rows] for n, v in initial_state.items()}
        expected = _forward_rows(spec, weights, x[rows], lengths[rows], state)
        worst = _larger(worst, _max_abs_err_in_place(actual, expected, rows))
    return worst


def _max_abs_err_in_place(actual, expected, rows: slice) -> float:
    # `expected` is dropped after this, so each difference overwrites it rather than a temporary.
    # `output` is the last layer's sequence itself: it goes first (with a temporary), before that
    # sequence is overwritten.
    worst = 0.0
    for name in sorted(set(actual) & set(expected), key=lambda n: (n != names.OUTPUT, n)):
        a, e = np.asarray(actual[name])[rows], expected[name]
        if a.shape != e.shape:
            raise ValueError(f"shape mismatch for {name}: {a.shape} vs reference {e.shape}")
        if not e.size:
            continue
        difference = np.subtract(a, e, dtype=np.float64, out=None if name == names.OUTPUT else e)
        worst = _larger(worst, float(np.max(np.abs(difference, out=difference))))
    return worst


def _larger(worst: float, error: float) -> float:
    """The larger error; NaN (a NaN in the results) wins and stays, where `max` would drop it."""
    return error if error != error or error > worst else worst


def max_abs_err(actual: dict[str, np.ndarray], expected: dict[str, np.ndarray]) -> float:
    """Largest absolute difference over the arrays present in both (shapes must agree)."""
    worst = 0.0
    for name in sorted(set(actual) & set(expected)):
        a, e = np.asarray(actual[name], np.float64), np.asarray(expected[name], np.float64)
        if a.shape != e.shape:
            raise ValueError(f"shape mismatch for {name}: {a.shape} vs reference {e.shape}")
        if a.size:
            worst = _larger(worst, float(np.max(np.abs(a - e))))
    return worst
