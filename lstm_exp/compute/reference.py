"""NumPy re-computation of the cells' equations, in float64, independent of TensorFlow.

Every run is checked against this: same weights (keras layout), same input, lengths and initial
states; `max_abs_err` is the largest difference over the arrays both sides produced.

Equations (keras gate order; TF1 `LSTMCell` extras where the spec asks for them):
    LSTM        z = x W + h U + b;  i, f = σ(z_i + p_i c, z_f + p_f c);  g = tanh(z_g)
                c_new = clip(f c + i g);  o = σ(z_o + p_o c_new);  h = clip(o tanh(c_new) P)
    GRU         (reset_after)  z, r = σ(x W_z + b_z + h U_z + b'_z, ...)
                n = tanh(x W_n + b_n + r (h U_n + b'_n));  h = z h + (1 - z) n
    SimpleRNN   h = tanh(x W + h U + b)
"""

import numpy as np

from lstm_exp.config.validate import GATES, ModelSpec


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-z))


def directions(spec: ModelSpec) -> tuple[str, ...]:
    """Name prefixes of one layer's directions: ``("",)`` or ``("fw/", "bw/")``."""
    return ("fw/", "bw/") if spec.bidirectional else ("",)


def reverse_rows(seq: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Reverses each row's first `lengths[b]` steps, leaving its padding in place (TF1 reverse_sequence)."""
    out = seq.copy()
    for b, n in enumerate(lengths):
        out[b, :n] = seq[b, :n][::-1]
    return out


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


def _run_direction(spec, w, seq, mask, h, c):
    """Steps one direction over (B, T, F); masked steps carry the state and output zeros."""
    batch, steps, _ = seq.shape
    outputs, gates = [], []
    for t in range(steps):
        valid = mask[:, t : t + 1]  # (B, 1)
        if spec.cell == "lstm":
            h_new, c_new, gate_values = _lstm_step(spec, w, seq[:, t], h, c)
            c = np.where(valid, c_new, c)
            gates.append([np.where(valid, g, 0.0) for g in gate_values])
        elif spec.cell == "gru":
            h_new = _gru_step(w, seq[:, t], h)
        else:
            h_new = np.tanh(seq[:, t] @ w["kernel"] + h @ w["recurrent_kernel"] + w["bias"])
        h = np.where(valid, h_new, h)
        outputs.append(np.where(valid, h_new, 0.0))
    result = {"sequence": np.stack(outputs, axis=1), "h": h}
    if spec.cell == "lstm":
        result["c"] = c
        for n, gate in enumerate(GATES):
            result[f"gates/{gate}"] = np.stack([g[n] for g in gates], axis=1)
    return result


def reference_forward(
    spec: ModelSpec,
    weights: dict[str, np.ndarray],
    x: np.ndarray,
    lengths: np.ndarray | None = None,
    initial_state: dict[str, np.ndarray] | None = None,
) -> dict[str, np.ndarray]:
    """Runs the whole stack in float64 and returns the runner's array names.

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
    batch, steps, _ = x.shape
    lengths = np.full(batch, steps) if lengths is None else np.asarray(lengths)
    mask = np.arange(steps)[None, :] < lengths[:, None]  # (B, T)
    initial_state = initial_state or {}
    seq = x.astype(np.float64)
    arrays: dict[str, np.ndarray] = {}
    for k, units in enumerate(spec.units):
        parts = []
        for d in directions(spec):
            pre = f"layer_{k}/{d}"
            w = {n[len(pre) :]: v.astype(np.float64) for n, v in weights.items() if n.startswith(pre)}
            h0 = initial_state.get(pre + "h", np.zeros((batch, spec.hidden_size(k))))
            c0 = initial_state.get(pre + "c", np.zeros((batch, units)))
            inputs = reverse_rows(seq, lengths) if d == "bw/" else seq
            part = _run_direction(spec, w, inputs, mask, h0.astype(np.float64), c0.astype(np.float64))
            for name in [n for n in part if part[n].ndim == 3] if d == "bw/" else ():
                part[name] = reverse_rows(part[name], lengths)
            if spec.bidirectional:
                arrays.update({pre + n: v for n, v in part.items() if n != "sequence"})
            parts.append(part)
        for name in ("sequence", "h", "c"):
            if name in parts[0]:
                arrays[f"layer_{k}/{name}"] = np.concatenate([p[name] for p in parts], axis=-1)
        if not spec.bidirectional:
            arrays.update({f"layer_{k}/{n}": v for n, v in parts[0].items() if n.startswith("gates/")})
        seq = arrays[f"layer_{k}/sequence"]
    arrays["output"] = seq
    return arrays


def max_abs_err(actual: dict[str, np.ndarray], expected: dict[str, np.ndarray]) -> float:
    """Largest absolute difference over the arrays present in both (shapes must agree)."""
    worst = 0.0
    for name in sorted(set(actual) & set(expected)):
        a, e = np.asarray(actual[name], np.float64), np.asarray(expected[name], np.float64)
        if a.shape != e.shape:
            raise ValueError(f"shape mismatch for {name}: {a.shape} vs reference {e.shape}")
        if a.size:
            worst = max(worst, float(np.max(np.abs(a - e))))
    return worst
