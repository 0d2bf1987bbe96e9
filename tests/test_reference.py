"""The NumPy reference against closed forms, and Keras against the reference, for all three cells."""

import numpy as np
import pytest
from conftest import compose

import lstm_exp
from lstm_exp.compute.initializers import initial_weights
from lstm_exp.compute.reference import check_max_abs_err, max_abs_err, reference_forward
from lstm_exp.config import names
from lstm_exp.config.memory import CHECK_BUDGET_BYTES, TF_BASE_BYTES, check_rows, reference_row_bytes
from lstm_exp.config.specs import ModelSpec
from lstm_exp.config.validate import estimate_bytes, expected_shapes, largest_arrays

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
    # A NaN in the results is never hidden behind an earlier finite error (Python's max would drop it).
    wrong = {"a": np.full((2, 2), 0.5), "b": np.array([[0.0, np.nan]])}
    assert np.isnan(max_abs_err(wrong, {"a": np.zeros((2, 2)), "b": np.zeros((1, 2))}))
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


# -- the runner's check, a chunk of batch rows at a time (issue 28) ---------------------------------
CHUNKED = [
    ModelSpec("lstm", (5, 3)),
    ModelSpec("lstm", (4, 3), bidirectional=True),
    ModelSpec("lstm", (6, 4), peepholes=True, cell_clip=0.5, proj_size=3, proj_clip=0.4),
    ModelSpec("lstm", (6,), proj_size=2, bidirectional=True),
    ModelSpec("gru", (4, 3), bidirectional=True),
    ModelSpec("simple_rnn", (3, 2)),
]


def _random_state(spec: ModelSpec, batch: int, rng) -> dict[str, np.ndarray]:
    state = {}
    for k, units in enumerate(spec.units):
        for d in spec.directions:
            state[names.array_name(k, names.H, d)] = rng.normal(size=(batch, spec.hidden_size(k)))
            if spec.cell == "lstm":
                state[names.array_name(k, names.C, d)] = rng.normal(size=(batch, units))
    return state


@pytest.mark.parametrize("spec", CHUNKED, ids=lambda s: f"{s.cell}-bi{int(s.bidirectional)}-p{s.proj_size}")
@pytest.mark.parametrize("lengths", [None, np.array([7, 3, 0, 1, 5])], ids=["full", "lengths"])
def test_the_chunked_check_equals_the_whole_array_check(spec, lengths):
    rng = np.random.default_rng(7)
    x = rng.normal(size=(5, 7, 3)).astype(np.float32)
    weights = initial_weights(spec, 3, seed=1)
    state = _random_state(spec, 5, rng)
    expected = reference_forward(spec, weights, x, lengths, state)
    # A float32 engine's answer: the reference rounded, plus noise, plus one wrong value in the last row.
    actual = {n: (v + rng.normal(scale=1e-4, size=v.shape)).astype(np.float32) for n, v in expected.items()}
    actual[names.OUTPUT] = actual[names.array_name(len(spec.units) - 1, names.SEQUENCE)]
    actual[names.array_name(0, names.H)][4, 0] += 0.25
    before = {n: v.copy() for n, v in actual.items()}
    whole = max_abs_err(actual, expected)
    assert whole > 0.2
    rows_per_chunk = {}
    for budget in (1, 3 * 8 * 7 * 30, CHECK_BUDGET_BYTES):  # one row per chunk, a few rows, all at once
        chunked = check_max_abs_err(spec, weights, x, actual, lengths, state, budget_bytes=budget)
        assert chunked == pytest.approx(whole, rel=1e-12, abs=0)  # BLAS may round fewer rows' last bit
        rows_per_chunk[budget] = check_rows(expected_shapes(spec, 5, 7, 3, one_step=False), budget)
    assert rows_per_chunk[1] == 1 and rows_per_chunk[CHECK_BUDGET_BYTES] == 5
    for name, value in before.items():  # the check compares in place in its own arrays, never the run's
        np.testing.assert_array_equal(actual[name], value)
    actual[names.OUTPUT][2, 1, 0] = np.nan  # a NaN in a later row than the largest finite error
    assert np.isnan(check_max_abs_err(spec, weights, x, actual, lengths, state, budget_bytes=1))


def test_the_checks_working_set_is_its_budget_not_the_run_length():
    spec = ModelSpec("lstm", (256, 256))
    for steps in (128, 2048, 100_000):
        shapes = expected_shapes(spec, 32, steps, 64, one_step=False)
        # One row in float64: input, per layer sequence, 4 gates, h and c, and output's difference.
        row = 8 * (steps * 64 + 2 * (steps * 256 * 5 + 2 * 256) + steps * 256)
        assert reference_row_bytes(shapes) == row
        rows = check_rows(shapes)
        assert rows == max(1, min(32, CHECK_BUDGET_BYTES // row))
        assert rows * row <= max(CHECK_BUDGET_BYTES, row)


def test_the_estimate_is_the_base_the_arrays_and_one_chunk_of_the_check():
    spec = ModelSpec("lstm", (256, 256))
    shapes = expected_shapes(spec, 32, 2048, 64, one_step=False)
    arrays = 2 * 32 * 2048 * 256 * 5 + 2 * 2 * 32 * 256  # sequences, gates, h, c; output is the last sequence
    inputs = 2 * 32 * 2048 * 64  # NumPy's and the engine's copies
    weights = (64 + 256 + 2) * 1024 + (256 + 256 + 2) * 1024
    counted = 4 * (arrays + inputs + weights) + check_rows(shapes) * reference_row_bytes(shapes)
    pools = min(64 * 2**20, int(0.15 * counted))  # the libraries' pools, 15 % of the count up to 64 MiB
    assert pools == 64 * 2**20  # this size is past the bound
    assert estimate_bytes(shapes, spec, 64) == TF_BASE_BYTES + counted + pools
    small = expected_shapes(spec, 32, 128, 64, one_step=False)
    assert estimate_bytes(small, spec, 64) < estimate_bytes(shapes, spec, 64)
    assert largest_arrays(shapes) == "gates"
    assert largest_arrays(expected_shapes(ModelSpec("gru", (256, 256)), 32, 2048, 64, False)) == "sequences"
