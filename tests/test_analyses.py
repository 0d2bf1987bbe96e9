"""State analyses (`compute/analyses.py`) on tiny arrays whose statistics are worked out by hand here,
then on a real run."""

import math

import numpy as np
import pytest

import lstm_exp
from lstm_exp.compute.analyses import MAX_TIMESCALE, cell_states, pca_trajectories, state_analyses
from lstm_exp.compute.initializers import initial_weights
from lstm_exp.compute.reference import reference_forward
from lstm_exp.config.specs import ModelSpec

LSTM1 = ModelSpec("lstm", (1,))


def _lstm_arrays(i, f, g, o, sequence=None):
    """One-unit LSTM arrays from per-step gate lists of shape (B, T)."""
    gates = {n: np.asarray(v, np.float64)[..., None] for n, v in zip("ifgo", (i, f, g, o), strict=True)}
    arrays = {f"layer_0/gates/{n}": v for n, v in gates.items()}
    arrays["layer_0/sequence"] = np.zeros(gates["i"].shape) if sequence is None else np.asarray(sequence)
    return arrays


def test_gate_statistics_by_hand():
    arrays = _lstm_arrays(i=[[0.05, 0.5, 0.95]], f=[[0.5, 0.5, 0.5]], g=[[1.0, 1.0, 1.0]],
                          o=[[0.01, 0.02, 0.99]])
    stats = state_analyses(arrays, LSTM1, None)
    assert stats["layer_0.i_sat_low"] == pytest.approx(1 / 3)
    assert stats["layer_0.i_sat_high"] == pytest.approx(1 / 3)
    assert stats["layer_0.o_sat_low"] == pytest.approx(2 / 3)
    assert stats["layer_0.o_sat_high"] == pytest.approx(1 / 3)
    assert stats["layer_0.f_sat_low"] == stats["layer_0.f_sat_high"] == 0.0
    assert stats["layer_0.forget_mean"] == pytest.approx(0.5)
    assert stats["layer_0.forget_timescale"] == pytest.approx(2.0)  # 1 / (1 - 0.5)
    # From c0 = 0: c = 0.05, 0.5*0.05 + 0.5 = 0.525, 0.5*0.525 + 0.95 = 1.2125; |tanh| < 0.9 for all.
    assert stats["layer_0.c_tanh_sat"] == 0.0
    # From c0 = 4: c = 2.05, 1.525, 1.7125; tanh = 0.967, 0.910, 0.937: all three past 0.9.
    assert state_analyses(arrays, LSTM1, None, {"layer_0/c": np.array([[4.0]])})["layer_0.c_tanh_sat"] == 1.0


def test_forget_gate_at_one_gives_a_finite_timescale():
    arrays = _lstm_arrays(i=[[0.5]], f=[[1.0]], g=[[0.0]], o=[[0.5]])
    assert state_analyses(arrays, LSTM1, None)["layer_0.forget_timescale"] == MAX_TIMESCALE


def test_cell_clip_applies_in_the_recursion():
    gates = {"i": np.ones((1, 2, 1)), "f": np.ones((1, 2, 1)), "g": np.ones((1, 2, 1))}
    np.testing.assert_allclose(cell_states(gates, np.zeros((1, 1)), None)[0, :, 0], [1.0, 2.0])
    np.testing.assert_allclose(cell_states(gates, np.zeros((1, 1)), 1.5)[0, :, 0], [1.0, 1.5])


def test_step_change_and_pca_by_hand():
    # Rows (1, 0) -> (-1, 0) and (0, 2) -> (0, -2): steps of length 2 and 4; centred already, with
    # sums of squares 2 along x and 8 along y: ratios 0.8, 0.2, and 0 for a third axis H=2 lacks.
    seq = np.array([[[1.0, 0.0], [-1.0, 0.0]], [[0.0, 2.0], [0.0, -2.0]]])
    spec = ModelSpec("gru", (2,))
    stats = state_analyses({"layer_0/sequence": seq}, spec, None)
    assert set(stats) == {"layer_0.h_step_change", "layer_0.pca_var_1", "layer_0.pca_var_2",
                          "layer_0.pca_var_3"}  # GRU: no gates
    assert stats["layer_0.h_step_change"] == pytest.approx(3.0)
    assert [stats[f"layer_0.pca_var_{n}"] for n in (1, 2, 3)] == pytest.approx([0.8, 0.2, 0.0])
    # The first axis is y (signed so that its largest loading is positive), the second x.
    trajectory = pca_trajectories({"layer_0/sequence": seq}, spec, None)[0]
    np.testing.assert_allclose(trajectory, [[[0, 1], [0, -1]], [[2, 0], [-2, 0]]], atol=1e-12)


def test_constant_or_single_states_give_zeros_not_nan():
    spec = ModelSpec("simple_rnn", (3,))
    for seq in (np.full((2, 4, 3), 0.7), np.ones((1, 1, 3))):
        stats = state_analyses({"layer_0/sequence": seq}, spec, None)
        assert stats == {"layer_0.h_step_change": 0.0, "layer_0.pca_var_1": 0.0, "layer_0.pca_var_2": 0.0,
                         "layer_0.pca_var_3": 0.0}
        assert not np.isnan(pca_trajectories({"layer_0/sequence": seq}, spec, None)[0]).any()


def test_steps_past_a_rows_length_are_left_out():
    # Row 1 is valid for one step only; its later steps hold values that would change every statistic.
    arrays = _lstm_arrays(i=[[0.05, 0.5, 0.95], [0.05, 0.99, 0.99]], f=[[0.5, 0.5, 0.5], [0.5, 0.0, 0.0]],
                          g=[[0.0, 0.0, 0.0], [0.0, 1.0, 1.0]], o=[[0.5, 0.5, 0.5], [0.5, 0.01, 0.01]],
                          sequence=[[[0.0], [3.0], [3.0]], [[1.0], [100.0], [-100.0]]])
    stats = state_analyses(arrays, LSTM1, np.array([3, 1]))
    assert stats["layer_0.i_sat_low"] == pytest.approx(2 / 4)
    assert stats["layer_0.i_sat_high"] == pytest.approx(1 / 4)
    assert stats["layer_0.o_sat_low"] == 0.0
    assert stats["layer_0.forget_mean"] == pytest.approx(0.5)
    assert stats["layer_0.h_step_change"] == pytest.approx(1.5)  # row 0 only: steps of 3 and 0
    # Valid h values 0, 3, 3, 1 (mean 1.75): one dimension, so all its variance is on the first axis.
    assert [stats[f"layer_0.pca_var_{n}"] for n in (1, 2, 3)] == pytest.approx([1.0, 0.0, 0.0])
    trajectory = pca_trajectories(arrays, LSTM1, np.array([3, 1]))[0]
    assert np.isnan(trajectory[1, 1:]).all() and not np.isnan(trajectory[0]).any()
    np.testing.assert_allclose(trajectory[:, 0, 0], [-1.75, -0.75])


def test_backward_cells_are_recovered_in_their_own_time_order():
    # bw stepped t=1 first: c = 0*0 + 1*1 = 1 (tanh 0.76), then t=0: c = 1*1 + 1*1 = 2 (tanh 0.96).
    # Read forwards the same gates would give c = 1, then 0*1 + 1 = 1: nothing saturated.
    spec = ModelSpec("lstm", (1,), bidirectional=True)
    zeros = np.zeros((1, 2, 1))
    arrays = {f"layer_0/fw/gates/{n}": zeros for n in "ifgo"}
    arrays.update({"layer_0/bw/gates/i": np.ones((1, 2, 1)), "layer_0/bw/gates/g": np.ones((1, 2, 1)),
                   "layer_0/bw/gates/f": np.array([[[1.0], [0.0]]]), "layer_0/bw/gates/o": zeros})
    arrays["layer_0/sequence"] = np.zeros((1, 2, 2))
    stats = state_analyses(arrays, spec, None)
    assert stats["layer_0.c_tanh_sat"] == pytest.approx(1 / 4)  # 1 of 2 bw steps, 0 of 2 fw steps
    assert stats["layer_0.i_sat_high"] == pytest.approx(2 / 4)  # both directions pooled
    assert stats["layer_0.i_sat_low"] == pytest.approx(2 / 4)


@pytest.mark.parametrize("spec", [ModelSpec("lstm", (3,), bidirectional=True, peepholes=True, cell_clip=0.8),
                                  ModelSpec("lstm", (3,), proj_size=2)], ids=["bidi-peep-clip", "proj"])
def test_cells_from_gates_match_the_reference_final_state(spec):
    rng = np.random.default_rng(0)
    x, lengths = rng.normal(size=(3, 5, 4)) * 2, np.array([5, 3, 1])
    prefixes = ("fw/", "bw/") if spec.bidirectional else ("",)
    c0 = {f"layer_0/{d}c": rng.normal(size=(3, 3)) for d in prefixes}
    arrays = reference_forward(spec, initial_weights(spec, 4, 0), x, lengths, c0)
    for d in prefixes:
        gates = {n: arrays[f"layer_0/{d}gates/{n}"] for n in "ifgo"}
        if d == "bw/":  # the last c of the backward direction is the one at each row's step 0
            order = np.array([[min(n - 1 - t, 4) if t < n else t for t in range(5)] for n in lengths])
            gates = {n: np.take_along_axis(v, order[..., None], axis=1) for n, v in gates.items()}
        c = cell_states(gates, c0[f"layer_0/{d}c"], spec.cell_clip)
        np.testing.assert_allclose(c[np.arange(3), lengths - 1], arrays[f"layer_0/{d}c"], atol=1e-12)


def test_real_run_gives_every_metric_finite_and_in_range():
    result = lstm_exp.execute(lstm_exp.compose("tracking.enabled=false", "model=stacked"))
    stats = state_analyses(result.arrays, result.spec, None)
    per_layer = [f"{g}_sat_{s}" for g in "ifo" for s in ("low", "high")] + [
        "forget_mean", "forget_timescale", "c_tanh_sat", "h_step_change", "pca_var_1", "pca_var_2",
        "pca_var_3"]
    assert set(stats) == {f"layer_{k}.{name}" for k in (0, 1) for name in per_layer}
    assert all(math.isfinite(v) for v in stats.values())
    for k in (0, 1):
        for name in per_layer:
            value = stats[f"layer_{k}.{name}"]
            if name == "forget_timescale":
                assert 1.0 <= value <= MAX_TIMESCALE
            elif name == "h_step_change":
                assert value >= 0.0
            else:
                assert 0.0 <= value <= 1.0, name
        assert sum(stats[f"layer_{k}.pca_var_{n}"] for n in (1, 2, 3)) <= 1.0 + 1e-9
    trajectories = pca_trajectories(result.arrays, result.spec, None)
    assert {k: t.shape for k, t in trajectories.items()} == {0: (2, 3, 2), 1: (2, 3, 2)}
