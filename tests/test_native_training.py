"""The native op's backward through time (`native/trainable.py`) and the training engine it gives.

Tolerances:
- forward: 1e-6 absolute against the float64 reference (as for the forward op, `test_native.py`);
- gradients against TensorFlow's own gradient of the stock Keras LSTM (float32 both sides): 1e-4
  relative to the largest magnitude of each gradient (observed: 1e-7 to 6e-7);
- gradients against central finite differences of the float64 reference (step 1e-6, whose own
  error is ~1e-9 here) on a tiny case: 1e-4 relative likewise (observed ~1e-7).
"""

import logging

import numpy as np
import pytest
from gradient_checks import central_differences, relative, tiny_task

from lstm_exp.compute import tasks
from lstm_exp.compute.engine_choice import CHOICES, read_choices
from lstm_exp.compute.initializers import initial_weights
from lstm_exp.compute.native.build import NativeBuildError
from lstm_exp.compute.reference import reference_forward
from lstm_exp.compute.training import train
from lstm_exp.config.specs import ModelSpec

RTOL = 1e-4
ATOL_FORWARD = 1e-6
CASES = {  # name: (B, T, F, H, with lengths)
    "tiny": (2, 3, 4, 5, False),
    "lengths-odd-units": (5, 7, 3, 37, True),
    "two-output-blocks": (4, 6, 8, 70, True),  # H > 4W even at AVX-512's W = 16
    "odd-batch-one-step": (3, 1, 2, 16, False),
}
NAMES = ("x", "kernel", "recurrent_kernel", "bias", "h0", "c0")
CELLS = ("lstm", "gru")  # the training tests: both cells the op trains (GRU's gradients: test_native_gru.py)
# `auto`'s kept training choice for the tiny task's class: a GRU's never lands on an LSTM's key
AUTO_KEYS = {"lstm": "training B16 T8 F2 U8", "gru": "training-gru B16 T8 F2 U8"}


@pytest.fixture(scope="module")
def native():
    """The op, built (or found in the user's cache) once."""
    from lstm_exp.compute.native.engine import load

    try:
        return load()
    except NativeBuildError as err:
        pytest.skip(f"the native op cannot be built here: {err}")


def _case(name, seed=0):
    batch, steps, feats, units, with_lengths = CASES[name]
    rng = np.random.default_rng([seed, len(name)])
    uniform = lambda *shape: rng.uniform(-0.5, 0.5, shape).astype(np.float32)  # noqa: E731
    args = (rng.standard_normal((batch, steps, feats)).astype(np.float32), uniform(feats, 4 * units),
            uniform(units, 4 * units), uniform(4 * units), 2 * uniform(batch, units),
            2 * uniform(batch, units))
    lengths = np.full(batch, steps, np.int32)
    if with_lengths:
        lengths = rng.integers(1, steps + 1, batch).astype(np.int32)
        lengths[0] = 1
    probes = (rng.standard_normal((batch, steps, units)), rng.standard_normal((batch, units)),
              rng.standard_normal((batch, units)))
    return args, lengths, tuple(p.astype(np.float32) for p in probes)


def _native_gradients(args, lengths, probes, max_threads=0):
    """(sequence, h, c) and the gradients of sum(probe * output) over the three outputs."""
    import tensorflow as tf

    from lstm_exp.compute.native.engine import load
    from lstm_exp.compute.native.trainable import lstm_layer

    loaded = load()
    tensors = [tf.constant(a) for a in args]
    with tf.GradientTape() as tape:
        tape.watch(tensors)
        outputs = lstm_layer(loaded.module, loaded.width, *tensors, tf.constant(lengths), max_threads)
        loss = sum(tf.reduce_sum(o * p) for o, p in zip(outputs, probes, strict=True))
    return [o.numpy() for o in outputs], [g.numpy() for g in tape.gradient(loss, tensors)]


def _keras_gradients(args, lengths, probes):
    """The same gradients by TensorFlow's autodiff of the stock Keras LSTM (masked like TF1)."""
    import keras
    import tensorflow as tf

    x, kernel, recurrent, bias, h0, c0 = (tf.constant(a) for a in args)
    layer = keras.layers.LSTM(recurrent.shape[0], return_sequences=True, return_state=True)
    layer.build((None, None, x.shape[-1]))
    for variable, value in zip(layer.weights, (kernel, recurrent, bias), strict=True):
        variable.assign(value)
    mask = tf.sequence_mask(lengths, x.shape[1])
    with tf.GradientTape() as tape:
        tape.watch([x, h0, c0])
        seq, h, c = layer(x, mask=mask, initial_state=[h0, c0])
        seq = seq * tf.cast(mask, tf.float32)[:, :, None]  # TF1: zero outputs past a row's length
        loss = sum(tf.reduce_sum(o * p) for o, p in zip((seq, h, c), probes, strict=True))
    grads = tape.gradient(loss, [x, *layer.weights, h0, c0])
    return [g.numpy() for g in grads]


@pytest.mark.slow
@pytest.mark.parametrize("case", list(CASES))
def test_gradients_match_tensorflows_gradient_of_the_stock_layer(native, case):
    args, lengths, probes = _case(case)
    outputs, grads = _native_gradients(args, lengths, probes)
    spec = ModelSpec("lstm", (args[2].shape[0],))
    keys = ("layer_0/kernel", "layer_0/recurrent_kernel", "layer_0/bias")
    weights = dict(zip(keys, args[1:4], strict=True))
    want = reference_forward(spec, weights, args[0], lengths, {"layer_0/h": args[4], "layer_0/c": args[5]})
    for got, key in zip(outputs, ("layer_0/sequence", "layer_0/h", "layer_0/c"), strict=True):
        assert np.abs(got - want[key]).max() <= ATOL_FORWARD, key
    for name, got, expected in zip(NAMES, grads, _keras_gradients(args, lengths, probes), strict=True):
        assert got.shape == expected.shape and got.dtype == np.float32, name
        assert relative(got, expected) <= RTOL, name
    # Threads split the rows, and a row's sums never depend on which thread ran it.
    again = _native_gradients(args, lengths, probes)[1]
    single = _native_gradients(args, lengths, probes, max_threads=1)[1]
    for name, a, b, c in zip(NAMES, grads, again, single, strict=True):
        assert a.tobytes() == b.tobytes() == c.tobytes(), name


def _reference_loss(args64, lengths, probes):
    x, kernel, recurrent, bias, h0, c0 = args64
    spec = ModelSpec("lstm", (recurrent.shape[0],))
    weights = {"layer_0/kernel": kernel, "layer_0/recurrent_kernel": recurrent, "layer_0/bias": bias}
    out = reference_forward(spec, weights, x, lengths, {"layer_0/h": h0, "layer_0/c": c0})
    return sum(float(np.sum(out[k].astype(np.float64) * p))
               for k, p in zip(("layer_0/sequence", "layer_0/h", "layer_0/c"), probes, strict=True))


@pytest.mark.slow
def test_gradients_match_finite_differences_of_the_float64_reference(native):
    args, lengths, probes = _case("tiny")
    lengths = np.array([3, 2], np.int32)  # one row stops early
    _, grads = _native_gradients(args, lengths, probes)
    args64 = [a.astype(np.float64) for a in args]
    numeric = central_differences(lambda a: _reference_loss(a, lengths, probes), args64)
    for name, grad, want in zip(NAMES, grads, numeric, strict=True):
        assert relative(grad, want) <= RTOL, name


@pytest.mark.slow
@pytest.mark.parametrize("cell", CELLS)
def test_native_training_is_repeatable_and_close_to_stock_keras(native, cell):
    task, spec = tiny_task(), ModelSpec(cell, (5, 4), implementation="native")
    start = initial_weights(spec, tasks.features(task), 0)
    first, second = (train(task, spec, start, 0) for _ in range(2))
    assert first.engine.startswith("native (") and first.engine_why == "model.implementation=native"
    for name in first.weights:
        assert first.weights[name].tobytes() == second.weights[name].tobytes(), name
    assert first.train_loss == second.train_loss
    stock = train(task, ModelSpec(cell, (5, 4), implementation="keras"), start, 0)
    assert stock.engine == "keras"
    # Two epochs of Adam from the same start: float32 rounding differences only (observed ~1e-6).
    for name in first.weights:
        np.testing.assert_allclose(first.weights[name], stock.weights[name], atol=1e-4, err_msg=name)


@pytest.mark.slow
@pytest.mark.parametrize("cell", CELLS)
def test_training_falls_back_to_stock_keras_with_one_line_naming_why(monkeypatch, caplog, cell):
    monkeypatch.setenv("LSTM_EXP_NATIVE_DISABLE", "1")
    spec = ModelSpec(cell, (3,), implementation="native")
    with caplog.at_level(logging.WARNING, logger="lstm_exp"):
        result = train(tiny_task(1), spec, initial_weights(spec, 2, 0), 0)
    assert result.engine == "keras" and "LSTM_EXP_NATIVE_DISABLE" in result.engine_why
    lines = [r.getMessage() for r in caplog.records if f"native {cell.upper()} training" in r.getMessage()]
    assert len(lines) == 1 and "disabled by LSTM_EXP_NATIVE_DISABLE=1" in lines[0]


@pytest.mark.slow
@pytest.mark.parametrize("cell", CELLS)
def test_auto_keeps_its_measured_choice_so_runs_repeat_bit_for_bit(native, cell):
    task, spec = tiny_task(1), ModelSpec(cell, (6,))  # implementation=auto
    start = initial_weights(spec, tasks.features(task), 0)
    first, second = train(task, spec, start, 0), train(task, spec, start, 0)
    assert first.engine in ("keras", f"native ({native.build.isa})") and first.engine_why.startswith("auto, ")
    assert second.engine == first.engine and "kept choice" in second.engine_why
    for name in first.weights:
        assert first.weights[name].tobytes() == second.weights[name].tobytes(), name
    kept = read_choices(native.build.path.parent / CHOICES)
    assert AUTO_KEYS[cell] in kept
