"""lstm_exp.compute.fused against an independent float64 NumPy LSTM and against stock keras.layers.LSTM.

Tolerance: 1e-5 absolute, everything computed in float32 (observed errors are ~2e-7).
"""

import numpy as np
import pytest

from lstm_exp.compute import fused

ATOL = 1e-5  # absolute, float32
TUTORIAL = np.array([[[1, 2, 3, 4, 3, 2], [1, 2, 1, 1, 1, 2], [1, 2, 2, 2, 2, 2]],
                     [[1, 2, 3, 4, 3, 2], [3, 2, 2, 1, 1, 2], [0, 0, 0, 0, 3, 2]]], np.float32)
VARIANTS = [("wavefront", True), ("wavefront", False), ("layerwise", True), ("layerwise", False)]
VARIANT_IDS = ["wavefront-xla", "wavefront-graph", "layerwise-xla", "layerwise-graph"]


def make_weights(units, feats, seed):
    rng = np.random.default_rng(seed)
    out = {}
    for k, u in enumerate(units):
        out[f"layer_{k}/kernel"] = rng.uniform(-0.6, 0.6, (feats, 4 * u)).astype(np.float32)
        out[f"layer_{k}/recurrent_kernel"] = rng.uniform(-0.6, 0.6, (u, 4 * u)).astype(np.float32)
        out[f"layer_{k}/bias"] = rng.uniform(-0.6, 0.6, (4 * u,)).astype(np.float32)
        feats = u
    return out


def numpy_stack(weights, x, lengths=None, initial_state=None):
    """The keras LSTM equations with dynamic_rnn lengths, float64, one step at a time."""
    x = x.astype(np.float64)
    batch, steps, _ = x.shape
    lengths = np.full(batch, steps) if lengths is None else np.asarray(lengths)
    sigmoid = lambda v: 1.0 / (1.0 + np.exp(-v))  # noqa: E731
    out, k = {}, 0
    while f"layer_{k}/kernel" in weights:
        w, u, b = (weights[f"layer_{k}/{p}"].astype(np.float64)
                   for p in ("kernel", "recurrent_kernel", "bias"))
        units = u.shape[0]
        h, c = (np.zeros((batch, units)) if initial_state is None
                else initial_state[f"layer_{k}/{p}"].astype(np.float64) for p in "hc")
        seq = np.zeros((batch, steps, units))
        gates = {g: np.zeros((batch, steps, units)) for g in fused.GATES}
        for t in range(steps):
            zi, zf, zg, zo = np.split(x[:, t] @ w + h @ u + b, 4, axis=-1)
            act = dict(i=sigmoid(zi), f=sigmoid(zf), g=np.tanh(zg), o=sigmoid(zo))
            c_new = act["f"] * c + act["i"] * act["g"]
            h_new = act["o"] * np.tanh(c_new)
            live = (t < lengths)[:, None]
            h, c = np.where(live, h_new, h), np.where(live, c_new, c)
            seq[:, t] = np.where(live, h_new, 0.0)
            for g in fused.GATES:
                gates[g][:, t] = np.where(live, act[g], 0.0)
        out.update({f"layer_{k}/sequence": seq, f"layer_{k}/h": h, f"layer_{k}/c": c})
        out.update({f"layer_{k}/gates/{g}": v for g, v in gates.items()})
        x, k = seq, k + 1
    return out


def assert_close(got, want, keys=None):
    for key in keys or want:
        assert got[key].shape == want[key].shape, key
        np.testing.assert_allclose(got[key], want[key], rtol=0, atol=ATOL, err_msg=key)


CASES = {  # name: (units, x, lengths, with initial state)
    "tutorial": ([4, 5], TUTORIAL, None, False),
    "tutorial-lengths": ([4, 5], TUTORIAL, [3, 2], True),
    "random-3-layers": ([16, 8, 12], None, [7, 1, 4], True),
    "random-equal-units": ([8, 8, 8], None, [2, 7, 5], True),  # batched-matmul path
}


@pytest.mark.parametrize("schedule,jit", [  # an XLA compile takes seconds per case: the slow tier
    pytest.param(*variant, id=name, marks=[pytest.mark.slow] if variant[1] else [])
    for variant, name in zip(VARIANTS, VARIANT_IDS, strict=True)])
@pytest.mark.parametrize("case", list(CASES))
def test_matches_numpy(case, schedule, jit):
    units, x, lengths, with_state = CASES[case]
    rng = np.random.default_rng(len(case))
    if x is None:
        x = rng.standard_normal((3, 7, 5)).astype(np.float32)
    weights = make_weights(units, x.shape[-1], seed=len(case))
    state = ({f"layer_{k}/{p}": rng.uniform(-1, 1, (x.shape[0], u)).astype(np.float32)
              for k, u in enumerate(units) for p in "hc"} if with_state else None)
    got = fused.fused_forward(weights, x, lengths, state, return_gates=True,
                              schedule=schedule, jit_compile=jit)
    want = numpy_stack(weights, x, lengths, state)
    assert set(got) == set(want)
    assert all(v.dtype == np.float32 for v in got.values())
    assert_close(got, want)
    if lengths is not None:  # past a row's length: zero outputs, gates included
        short = int(np.argmin(lengths))
        assert not got[f"layer_{len(units) - 1}/sequence"][short, min(lengths):].any()
        assert not got["layer_0/gates/f"][short, min(lengths):].any()


@pytest.mark.slow
@pytest.mark.parametrize("units,with_state", [([4, 5], False), ([16, 8, 12], True)])
def test_matches_stock_keras(units, with_state):
    keras = pytest.importorskip("keras")
    x = TUTORIAL if units == [4, 5] else np.random.default_rng(3).standard_normal(
        (3, 7, 5)).astype(np.float32)
    weights = make_weights(units, x.shape[-1], seed=7)
    rng = np.random.default_rng(11)
    state = ({f"layer_{k}/{p}": rng.uniform(-1, 1, (x.shape[0], u)).astype(np.float32)
              for k, u in enumerate(units) for p in "hc"} if with_state else None)
    want, seq = {}, x
    for k, u in enumerate(units):
        lstm = keras.layers.LSTM(u, return_sequences=True, return_state=True)
        lstm.build(seq.shape)
        lstm.set_weights([weights[f"layer_{k}/{p}"] for p in ("kernel", "recurrent_kernel", "bias")])
        init = None if state is None else [state[f"layer_{k}/h"], state[f"layer_{k}/c"]]
        seq, h, c = (np.asarray(v) for v in lstm(seq, initial_state=init))
        want.update({f"layer_{k}/sequence": seq, f"layer_{k}/h": h, f"layer_{k}/c": c})
    for schedule, jit in VARIANTS:
        assert_close(fused.fused_forward(weights, x, initial_state=state, schedule=schedule,
                                         jit_compile=jit), want)


@pytest.mark.slow
def test_keras_layer_api_and_no_retrace():
    units, weights = [16, 8, 12], make_weights([16, 8, 12], 5, seed=5)
    x = np.random.default_rng(0).standard_normal((3, 7, 5)).astype(np.float32)
    layer = fused.FusedLSTMStack(units, weights=weights)
    for key, value in layer.get_weights_dict().items():
        np.testing.assert_array_equal(value, weights[key])
    got = {k: np.asarray(v) for k, v in layer(x, lengths=np.array([7, 1, 4]),
                                             return_gates=True).items()}
    assert_close(got, numpy_stack(weights, x, [7, 1, 4]))
    assert len(layer.trainable_weights) == 3 * len(units)

    fn = fused.compiled_forward()  # the default: schedule "auto" under XLA is layerwise
    assert fn is fused.compiled_forward("layerwise", True)
    assert fused.compiled_forward("auto", False) is fused.compiled_forward("wavefront", False)
    fused.fused_forward(weights, x)
    traces = fn.experimental_get_tracing_count()
    fused.fused_forward(weights, 2 * x)  # same shapes, new values: the cached trace is reused
    assert fn.experimental_get_tracing_count() == traces

    with pytest.raises(ValueError, match="schedule"):
        fused.compiled_forward("diagonal")
