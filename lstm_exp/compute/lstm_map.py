"""One step of an LSTM stack with its input held constant, as a map x -> F(x), and its Jacobian dF/dx.

The state x of the stack is every layer's (h, c) side by side, layer 0 first:

    x = [h_0, c_0, h_1, c_1, ...]                                   (D,) with D = 2 * sum(units)

F steps each layer once, layer k reading the constant input u (k = 0) or layer k - 1's new h, with the
cell equations of `reference.py` (keras gate order i, f, g, o). The Jacobian is analytic, in float64:

    z = v W + h U + b;  c' = f c + i g;  h' = o tanh(c')
    dc'/dv = (g σ'_i) W_i^T + (c σ'_f) W_f^T + (i tanh'_g) W_g^T       (v: the layer's input or h)
    dh'/dv = o tanh'(c') dc'/dv + tanh(c') σ'_o W_o^T
    dc'/dc = diag(f);  dh'/dc = diag(o tanh'(c') f)
    layer k > 0 adds d(h'_k, c'_k)/d(input) @ dh'_{k-1}/dx: the chain through the stack

This module does not import `reference.py` (the check's independence); the tests compare both, and the
Jacobian against finite differences of the reference.
"""

import numpy as np

from lstm_exp.config import names
from lstm_exp.config.specs import ModelSpec


def state_slices(spec: ModelSpec) -> dict[str, slice]:
    """Where each layer's h and c sit in the stack's state x: ``{"layer_0/h": slice(0, 16), ...}``."""
    slices, start = {}, 0
    for k, units in enumerate(spec.units):
        for part in (names.H, names.C):
            slices[names.array_name(k, part)] = slice(start, start + units)
            start += units
    return slices


def state_size(spec: ModelSpec) -> int:
    """D, the length of the stack's state x."""
    return 2 * sum(spec.units)


def _sigmoid(z: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):  # exp(-z) = inf for z < -709 gives the right 0
        return 1.0 / (1.0 + np.exp(-z))


def _layer_weights(weights: dict[str, np.ndarray], k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return tuple(np.asarray(weights[names.array_name(k, part)], np.float64)
                 for part in ("kernel", "recurrent_kernel", "bias"))


def step(spec: ModelSpec, weights: dict[str, np.ndarray], u: np.ndarray, x: np.ndarray,
         jacobian: bool = True) -> tuple[np.ndarray, np.ndarray | None]:
    """F(x) and, with `jacobian`, dF/dx for a batch of states.

    Args:
        spec: a plain LSTM stack (`config.analysis.check_plain_lstm`).
        weights: keras layout (`layer_{k}/kernel` (F_k, 4H), `recurrent_kernel` (H, 4H), `bias` (4H,)).
        u: the constant input, (F,).
        x: states, (P, D) in the order of `state_slices`.

    Returns:
        F(x) (P, D) and dF/dx (P, D, D) (None without `jacobian`).

    Example:
        >>> fx, jac = step(ModelSpec("lstm", (16,)), weights, np.zeros(3), np.zeros((5, 32)))
        >>> fx.shape, jac.shape
        ((5, 32), (5, 32, 32))
    """
    x = np.asarray(x, np.float64)
    points, size = x.shape
    slices = state_slices(spec)
    fx = np.empty_like(x)
    jac = np.zeros((points, size, size)) if jacobian else None
    layer_in = np.broadcast_to(np.asarray(u, np.float64), (points, len(u)))
    d_in = None  # d(layer input)/dx: None for the constant input of layer 0
    for k, units in enumerate(spec.units):
        kernel, recurrent, bias = _layer_weights(weights, k)
        hs, cs = slices[names.array_name(k, names.H)], slices[names.array_name(k, names.C)]
        h, c = x[:, hs], x[:, cs]
        z = layer_in @ kernel + h @ recurrent + bias  # (P, 4H)
        z_i, z_f, z_g, z_o = np.split(z, 4, axis=-1)
        i, f, g, o = _sigmoid(z_i), _sigmoid(z_f), np.tanh(z_g), _sigmoid(z_o)
        c_new = f * c + i * g
        tanh_c = np.tanh(c_new)
        h_new = o * tanh_c
        fx[:, hs], fx[:, cs] = h_new, c_new
        if jacobian:
            # What multiplies each gate's columns of W or U, per point and unit: (P, H) each.
            dc_gates = (g * i * (1 - i), c * f * (1 - f), i * (1 - g**2))
            dh_dc_new = o * (1 - tanh_c**2)
            dh_zo = tanh_c * o * (1 - o)

            def through(matrix, dc_gates=dc_gates, dh_dc_new=dh_dc_new, dh_zo=dh_zo, units=units):
                """(dh'/dv, dc'/dv), each (P, H, n_v), for a layer input v with z = v @ matrix."""
                columns = [matrix[:, n * units : (n + 1) * units].T for n in range(4)]  # (H, n_v) each
                dc = sum(a[:, :, None] * m[None] for a, m in zip(dc_gates, columns[:3], strict=True))
                dh = dh_dc_new[:, :, None] * dc + dh_zo[:, :, None] * columns[3][None]
                return dh, dc

            dh_dh, dc_dh = through(recurrent)
            jac[:, hs, hs], jac[:, cs, hs] = dh_dh, dc_dh
            jac[:, cs, cs] = _diagonal(f)
            jac[:, hs, cs] = _diagonal(dh_dc_new * f)
            if d_in is not None:  # the chain through layer k - 1's new h
                dh_din, dc_din = through(kernel)
                jac[:, hs, :] += dh_din @ d_in
                jac[:, cs, :] += dc_din @ d_in
            d_in = jac[:, hs, :]
        layer_in = h_new
    return fx, jac


def _diagonal(values: np.ndarray) -> np.ndarray:
    """(P, H) -> (P, H, H) diagonal matrices."""
    out = np.zeros(values.shape + values.shape[-1:])
    index = np.arange(values.shape[-1])
    out[:, index, index] = values
    return out


def cell_trajectory(gates: dict[str, np.ndarray], c0: np.ndarray | None = None) -> np.ndarray:
    """The cell states c_t of a recorded sequence, rebuilt from its gates: c_t = f_t c_{t-1} + i_t g_t.

    `states.npz` records each step's gates and h but only the final c; this gives c at every step
    (from `c0`, default zeros: the runs' default `input.initial_state`).

    Args:
        gates: `{"i": (B, T, H), "f": ..., "g": ...}`.

    Returns:
        (B, T, H) float64.
    """
    i, f, g = (np.asarray(gates[n], np.float64) for n in ("i", "f", "g"))
    c = np.zeros(i.shape[::2]) if c0 is None else np.asarray(c0, np.float64)
    out = np.empty(i.shape)
    for t in range(i.shape[1]):
        c = f[:, t] * c + i[:, t] * g[:, t]
        out[:, t] = c
    return out
