"""The NumPy reference against closed forms, and Keras against the reference, for all three cells."""

import numpy as np
import pytest
from conftest import compose

import lstm_exp
from lstm_exp.compute.reference import max_abs_err, reference_forward
from lstm_exp.config.validate import ModelSpec

TOLERANCE = 1e-6  # float32 Keras vs float64 NumPy on unit-scale inputs


def _sigmoid(z):
    return 1 / (1 + np.exp(-z))


def test_reference_lstm_step_matches_the_closed_form():
    # Zero kernels: one step from a zero state depends on the bias alone.
    bias = np.array([0.5, -1.0, 2.0, 0.3, 1.0, 0.0, -0.5, 0.7])  # i, f, g, o for H=2
    weights = {"layer_0/kernel": np.zeros((3, 8)), "layer_0/recurrent_kernel": np.zeros((2, 8)),
               "layer_0/bias": bias}
    out = reference_forward(ModelSpec("lstm", (2,)), weights, np.ones((1, 1, 3)))
    i, g, o = _sigmoid(bias[0:2]), np.tanh(bias[4:6]), _sigmoid(bias[6:8])
    c = i * g  # f * c_prev vanishes: c_prev is zero
    np.testing.assert_allclose(out["layer_0/c"][0], c, rtol=0, atol=1e-12)
    np.testing.assert_allclose(out["layer_0/h"][0], o * np.tanh(c), rtol=0, atol=1e-12)


def test_reference_gru_and_simple_rnn_match_the_closed_form():
    x = np.array([[[0.2, -0.4]]])
    kernel = np.array([[0.1, 0.2, 0.3], [0.4, 0.5, 0.6]])  # H=1: z, r, n columns
    gru = reference_forward(ModelSpec("gru", (1,)), {
        "layer_0/kernel": kernel, "layer_0/recurrent_kernel": np.ones((1, 3)),
        "layer_0/bias": np.zeros((2, 3))}, x)
    xz, _, xn = x[0, 0] @ kernel
    z, n = _sigmoid(xz), np.tanh(xn)  # h_prev = 0, so r multiplies zero
    np.testing.assert_allclose(gru["layer_0/h"][0, 0], (1 - z) * n, atol=1e-12)
    rnn = reference_forward(ModelSpec("simple_rnn", (1,)), {
        "layer_0/kernel": kernel[:, :1], "layer_0/recurrent_kernel": np.ones((1, 1)),
        "layer_0/bias": np.array([0.3])}, x)
    np.testing.assert_allclose(rnn["layer_0/h"][0, 0], np.tanh(0.2 * 0.1 - 0.4 * 0.4 + 0.3), atol=1e-12)


def test_reference_lengths_hold_the_state_and_zero_the_output():
    spec = ModelSpec("lstm", (3,))
    rng = np.random.default_rng(0)
    weights = {"layer_0/kernel": rng.normal(size=(2, 12)),
               "layer_0/recurrent_kernel": rng.normal(size=(3, 12)), "layer_0/bias": np.zeros(12)}
    x = rng.normal(size=(2, 4, 2))
    full = reference_forward(spec, weights, x[:1, :2])
    cut = reference_forward(spec, weights, x, lengths=np.array([2, 4]))
    np.testing.assert_allclose(cut["layer_0/h"][0], full["layer_0/h"][0], atol=1e-12)
    assert np.all(cut["layer_0/sequence"][0, 2:] == 0)


@pytest.mark.parametrize("overrides", [
    ("model=stacked", "input=random", "model.units=[7,5,3]", "input.timesteps=6", "seed=1"),
    ("model=gru", "input=random", "model.units=[6,4]", "input.timesteps=5", "seed=2"),
    ("model=simple_rnn", "input=random", "model.units=[5,5]", "input.timesteps=5", "seed=3"),
    ("model=stacked", "input.lengths=[3,1]", "input.initial_state=random", "seed=4"),
    ("model=gru", "model.bidirectional=true", "input.lengths=[2,3]", "seed=5"),
    ("model=stacked", "model.bidirectional=true", "input.initial_state=random", "seed=6"),
])
def test_keras_agrees_with_the_reference(overrides):
    result = lstm_exp.execute(compose(*overrides))
    assert result.reference_max_abs_err <= TOLERANCE
    # The check is not vacuous: the arrays it compares are far from zero and from each other.
    assert np.abs(result.arrays["layer_0/sequence"]).max() > 0.05


def test_max_abs_err_sees_a_difference():
    a = {"x": np.zeros((2, 2))}
    assert max_abs_err(a, {"x": np.full((2, 2), 0.25)}) == 0.25
    with pytest.raises(ValueError, match="shape"):
        max_abs_err(a, {"x": np.zeros((2, 3))})


def test_same_seed_same_arrays_different_seed_different():
    a = lstm_exp.execute(compose("model=stacked", "seed=11")).arrays
    b = lstm_exp.execute(compose("model=stacked", "seed=11")).arrays
    c = lstm_exp.execute(compose("model=stacked", "seed=12")).arrays
    assert a.keys() == b.keys()
    for name in a:
        np.testing.assert_array_equal(a[name], b[name])  # bit for bit
    assert not np.array_equal(a["output"], c["output"])
