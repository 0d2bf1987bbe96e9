"""Statistics of a run's states and gates, as the scalar metrics named in DESIGN.md (NumPy only).

Per LSTM layer k (fractions in [0, 1]); every statistic leaves out steps past a row's length:
    layer_{k}.{i,f,o}_sat_low / _sat_high   fraction of gate values < 0.1 / > 0.9
    layer_{k}.forget_mean                   mean forget gate
    layer_{k}.forget_timescale              1 / (1 - forget_mean): steps a memory decays over by 1/e
    layer_{k}.c_tanh_sat                    fraction of |tanh(c_t)| > 0.9
Per layer of any cell:
    layer_{k}.h_step_change                 mean ||h_t - h_{t-1}|| over valid steps t >= 1
    layer_{k}.pca_var_{1,2,3}               explained-variance ratios of the layer's output sequence
                                            over batch x time
    layer_{k}.h_norm, layer_{k}.c_norm      final state norms; h_norm also per step (`state_norms`)
A bidirectional layer's gate and cell statistics pool both directions; its h is both directions
concatenated, as in `layer_{k}/sequence`.
"""

import numpy as np

from lstm_exp.config import names
from lstm_exp.config.names import layer_metric
from lstm_exp.config.specs import ModelSpec

SAT_LOW, SAT_HIGH, C_TANH_SAT = 0.1, 0.9, 0.9
# forget_mean rounds to 1.0 once the forget gate saturates in float32; an infinite timescale would
# break MLflow's charts, and beyond a million steps the number only says "never forgets".
MAX_TIMESCALE = 1e6
PCA_COMPONENTS = 3


def valid_mask(lengths: np.ndarray | None, batch: int, steps: int) -> np.ndarray:
    """(B, T) booleans: True where t < lengths[b] (all True without lengths)."""
    if lengths is None:
        return np.ones((batch, steps), bool)
    return np.arange(steps)[None, :] < np.asarray(lengths)[:, None]


def _in_row_order(seq: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    # A backward direction stepped over each row's valid steps reversed (TF1 bidirectional_dynamic_rnn);
    # reversing them again gives its arrays in the order it computed them. Padding stays in place.
    steps = seq.shape[1]
    t = np.arange(steps)[None, :]
    index = np.where(t < lengths[:, None], lengths[:, None] - 1 - t, t)  # (B, T)
    return np.take_along_axis(seq, index[..., None], axis=1)


def cell_states(gates: dict[str, np.ndarray], c0: np.ndarray, cell_clip: float | None) -> np.ndarray:
    """c_t = clip(f_t c_{t-1} + i_t g_t), recovered from the gates in the order they were computed.

    Exact for TF1's extras too: peepholes change the gates, not this recursion.
    """
    c, states = c0.astype(np.float64), []
    for t in range(gates["f"].shape[1]):
        c = gates["f"][:, t] * c + gates["i"][:, t] * gates["g"][:, t]
        if cell_clip:
            c = np.clip(c, -cell_clip, cell_clip)
        states.append(c)
    return np.stack(states, axis=1)  # (B, T, C)


def carried_states(sequence: np.ndarray, lengths: np.ndarray | None) -> np.ndarray:
    """h_t per step with a row's state held after its end (outputs there are zero). (B, T, H)."""
    if lengths is None:
        return sequence
    steps = np.minimum(np.arange(sequence.shape[1])[None, :], lengths[:, None] - 1)  # (B, T)
    return np.take_along_axis(sequence, steps[:, :, None], axis=1)


def state_norms(arrays, layers: int, lengths) -> tuple[dict[str, float], dict[str, list[float]]]:
    """Final norms (`layer_{k}.h_norm`, `layer_{k}.c_norm`) and per-step h norms.

    The per-step series ends on the final state, so a chart's last point is the logged final value.
    """
    final, per_step = {}, {}
    for k in range(layers):
        h_norm, c = layer_metric(k, names.H_NORM), names.array_name(k, names.C)
        final[h_norm] = float(np.linalg.norm(arrays[names.array_name(k, names.H)]))
        if c in arrays:
            final[layer_metric(k, names.C_NORM)] = float(np.linalg.norm(arrays[c]))
        held = carried_states(arrays[names.array_name(k, names.SEQUENCE)], lengths)  # (B, T, H)
        series = [float(np.linalg.norm(held[:, t])) for t in range(held.shape[1])]
        series[-1] = final[h_norm]
        per_step[h_norm] = series
    return final, per_step


def _pca(rows: np.ndarray, components: int):
    """(explained-variance ratios padded with 0 to `components`, the principal axes (H, <=components))."""
    ratios = np.zeros(components)
    if rows.shape[0] < 2 or not np.ptp(rows, axis=0).any():  # one row, or constant states: no variance
        return ratios, np.zeros((rows.shape[1], 0))
    centred = rows - rows.mean(axis=0)
    _, s, vt = np.linalg.svd(centred, full_matrices=False)
    variance = s**2
    n = min(components, variance.size)
    ratios[:n] = variance[:n] / variance.sum()
    axes = vt[:n].T  # (H, n)
    # SVD's signs are arbitrary; make each axis's largest loading positive so plots do not flip.
    signs = np.sign(axes[np.abs(axes).argmax(axis=0), np.arange(n)])
    return ratios, axes * np.where(signs == 0, 1.0, signs)


def _h_step_change(seq: np.ndarray, mask: np.ndarray) -> float:
    pairs = mask[:, 1:] & mask[:, :-1]  # (B, T - 1): both ends of the step valid
    if not pairs.any():
        return 0.0
    steps = np.linalg.norm(np.diff(seq, axis=1), axis=-1)  # (B, T - 1)
    return float(steps[pairs].mean())


def _lstm_stats(arrays, spec, k, mask, lengths, initial_state) -> dict[str, float]:
    gate_values = {g: [] for g in "ifo"}
    saturated_c = []
    for d in spec.directions:
        gates = {g: np.asarray(arrays[names.gate_name(k, g, d)], np.float64) for g in names.GATES}
        for g in "ifo":
            gate_values[g].append(gates[g][mask])  # (valid steps, C)
        c0 = initial_state.get(names.array_name(k, names.C, d), np.zeros(gates["f"][:, 0].shape))
        if d == names.BACKWARD:
            c = _in_row_order(cell_states({g: _in_row_order(v, lengths) for g, v in gates.items()},
                                          np.asarray(c0), spec.cell_clip), lengths)
        else:
            c = cell_states(gates, np.asarray(c0), spec.cell_clip)
        saturated_c.append(np.abs(np.tanh(c[mask])) > C_TANH_SAT)
    stats = {}
    for g in "ifo":
        values = np.concatenate(gate_values[g])
        stats[layer_metric(k, f"{g}_sat_low")] = _fraction(values < SAT_LOW)
        stats[layer_metric(k, f"{g}_sat_high")] = _fraction(values > SAT_HIGH)
    forget = np.concatenate(gate_values["f"])
    forget_mean = float(forget.mean()) if forget.size else 0.0
    stats[layer_metric(k, "forget_mean")] = forget_mean
    stats[layer_metric(k, "forget_timescale")] = (
        MAX_TIMESCALE if forget_mean >= 1.0 else min(MAX_TIMESCALE, 1.0 / (1.0 - forget_mean))
    )
    stats[layer_metric(k, "c_tanh_sat")] = _fraction(np.concatenate(saturated_c))
    return stats


def _fraction(flags: np.ndarray) -> float:
    return float(flags.mean()) if flags.size else 0.0


def layer_pca(
    arrays: dict[str, np.ndarray], spec: ModelSpec, lengths: np.ndarray | None
) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """Each layer's principal components over batch x time, from one SVD per layer.

    Returns:
        {k: (ratios, trajectory)}: the explained-variance ratios of the first PCA_COMPONENTS axes
        (0.0 where there are fewer), and the states projected on the first two axes, (B, T, 2)
        float64, NaN past a row's length (a plot then ends the row's line there), a second
        coordinate of 0 where the states vary along fewer than two axes.
    """
    out = {}
    for k in range(len(spec.units)):
        seq = np.asarray(arrays[names.array_name(k, names.SEQUENCE)], np.float64)  # (B, T, H)
        batch, steps = seq.shape[:2]
        mask = valid_mask(lengths, batch, steps)
        ratios, axes = _pca(seq[mask], PCA_COMPONENTS)
        axes = axes[:, :2]
        projected = np.zeros((batch, steps, 2))
        if mask.any():
            projected[..., : axes.shape[1]] = (seq - seq[mask].mean(axis=0)) @ axes
        out[k] = ratios, np.where(mask[..., None], projected, np.nan)
    return out


def state_analyses(
    arrays: dict[str, np.ndarray],
    spec: ModelSpec,
    lengths: np.ndarray | None,
    initial_state: dict[str, np.ndarray] | None = None,
    pca: dict[int, tuple[np.ndarray, np.ndarray]] | None = None,
) -> dict[str, float]:
    """Every analysis of DESIGN.md for every layer, as finite floats.

    Args:
        arrays: the run's arrays (`Result.arrays`): `layer_{k}/sequence` (B, T, H) and, for LSTM layers,
            `layer_{k}/[fw/|bw/]gates/{i,f,g,o}` (B, T, C).
        spec: the validated model.
        lengths: (B,) valid steps per row, or None for all.
        initial_state: `layer_{k}/[fw/|bw/]c` initial cell states (missing: zeros), for c_tanh_sat.
        pca: `layer_pca(arrays, spec, lengths)` when the caller has it already (else computed here).

    Returns:
        {"layer_0.f_sat_low": 0.0, ..., "layer_0.pca_var_1": 0.93, ...}. pca_var_n is 0.0 where the
        states have fewer than n dimensions or rows, and all are 0.0 for constant states.

    Example:
        >>> result = lstm_exp.execute(lstm_exp.compose("model=stacked", "tracking.enabled=false"))
        >>> state_analyses(result.arrays, result.spec, None)["layer_1.forget_mean"]
        0.71...
    """
    initial_state = initial_state or {}
    pca = pca if pca is not None else layer_pca(arrays, spec, lengths)
    stats: dict[str, float] = {}
    for k in range(len(spec.units)):
        seq = np.asarray(arrays[names.array_name(k, names.SEQUENCE)], np.float64)  # (B, T, H)
        batch, steps = seq.shape[:2]
        mask = valid_mask(lengths, batch, steps)
        full = np.full(batch, steps) if lengths is None else np.asarray(lengths)
        if spec.cell == "lstm":
            stats.update(_lstm_stats(arrays, spec, k, mask, full, initial_state))
        stats[layer_metric(k, "h_step_change")] = _h_step_change(seq, mask)
        stats.update({layer_metric(k, f"pca_var_{n + 1}"): float(r) for n, r in enumerate(pca[k][0])})
    return stats


def pca_trajectories(
    arrays: dict[str, np.ndarray], spec: ModelSpec, lengths: np.ndarray | None
) -> dict[int, np.ndarray]:
    """Each layer's hidden states projected on their first two principal axes: {k: (B, T, 2)}.

    The trajectories of `layer_pca`, for callers that need nothing else.
    """
    return {k: trajectory for k, (_, trajectory) in layer_pca(arrays, spec, lengths).items()}
