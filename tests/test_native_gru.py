"""The native GRU ops (`gru_forward.cc`, `gru_backward.cc`, `native/gru_trainable.py`), the runs that
use them, and the GRU forward engine. Training with them (two epochs against stock Keras, the fallback,
`auto`'s kept choice) is tested with the LSTM's, for both cells, in `test_native_training.py`.

Tolerances (as for the LSTM op, `test_native_training.py`):
- forward: 1e-6 absolute against the float64 reference (observed 6e-8 to 3.3e-7);
- gradients against TensorFlow's own gradient of the stock `keras.layers.GRU` (float32 both sides):
  1e-4 relative to the largest magnitude of each gradient (observed 6e-8 to 6.2e-7);
- gradients against central finite differences of the float64 reference (step 1e-6) on a tiny
  case: 1e-4 relative likewise.
"""

import logging

import numpy as np
import pytest
from conftest import run_cli
from gradient_checks import central_differences, relative
from mlflow.tracking import MlflowClient
from recorded_run import record

from lstm_exp.compute.initializers import initial_weights
from lstm_exp.compute.native.build import NativeBuildError
from lstm_exp.compute.reference import reference_forward
from lstm_exp.config.specs import ModelSpec

RTOL = 1e-4
ATOL_FORWARD = 1e-6
CASES = {  # name: (B, T, F, H, with lengths)
    "tiny": (2, 3, 4, 5, False),
    "lengths-odd-units": (5, 7, 3, 37, True),
    "two-output-blocks": (4, 6, 8, 70, True),  # H > 4W even at AVX-512's W = 16
    "odd-batch-one-step": (3, 1, 2, 16, False),
}
NAMES = ("x", "kernel", "recurrent_kernel", "bias", "h0")
OUTPUTS = ("layer_0/sequence", "layer_0/h")


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
    rng = np.random.default_rng([seed, len(name), 3])
    uniform = lambda *shape: rng.uniform(-0.5, 0.5, shape).astype(np.float32)  # noqa: E731
    args = (rng.standard_normal((batch, steps, feats)).astype(np.float32), uniform(feats, 3 * units),
            uniform(units, 3 * units), uniform(2, 3 * units), 2 * uniform(batch, units))
    lengths = np.full(batch, steps, np.int32)
    if with_lengths:
        lengths = rng.integers(1, steps + 1, batch).astype(np.int32)
        lengths[0] = 1
    probes = (rng.standard_normal((batch, steps, units)), rng.standard_normal((batch, units)))
    return args, lengths, tuple(p.astype(np.float32) for p in probes)


def _native_gradients(args, lengths, probes, max_threads=0):
    """(sequence, h) and the gradients of sum(probe * output) over both outputs."""
    import tensorflow as tf

    from lstm_exp.compute.native.engine import load
    from lstm_exp.compute.native.gru_trainable import gru_layer

    loaded = load()
    tensors = [tf.constant(a) for a in args]
    with tf.GradientTape() as tape:
        tape.watch(tensors)
        outputs = gru_layer(loaded.module, loaded.width, *tensors, tf.constant(lengths), max_threads)
        loss = sum(tf.reduce_sum(o * p) for o, p in zip(outputs, probes, strict=True))
    return [o.numpy() for o in outputs], [g.numpy() for g in tape.gradient(loss, tensors)]


def _keras_gradients(args, lengths, probes):
    """The same gradients by TensorFlow's autodiff of the stock Keras GRU (masked like TF1)."""
    import keras
    import tensorflow as tf

    x, kernel, recurrent, bias, h0 = (tf.constant(a) for a in args)
    layer = keras.layers.GRU(recurrent.shape[0], return_sequences=True, return_state=True)
    layer.build((None, None, x.shape[-1]))
    for variable, value in zip(layer.weights, (kernel, recurrent, bias), strict=True):
        variable.assign(value)
    mask = tf.sequence_mask(lengths, x.shape[1])
    with tf.GradientTape() as tape:
        tape.watch([x, h0])
        seq, h = layer(x, mask=mask, initial_state=[h0])
        seq = seq * tf.cast(mask, tf.float32)[:, :, None]  # TF1: zero outputs past a row's length
        loss = sum(tf.reduce_sum(o * p) for o, p in zip((seq, h), probes, strict=True))
    return [g.numpy() for g in tape.gradient(loss, [x, *layer.weights, h0])]


def _reference(args, lengths):
    x, kernel, recurrent, bias, h0 = args
    weights = {"layer_0/kernel": kernel, "layer_0/recurrent_kernel": recurrent, "layer_0/bias": bias}
    return reference_forward(ModelSpec("gru", (recurrent.shape[0],)), weights, x, lengths,
                             {"layer_0/h": h0})


@pytest.mark.slow
@pytest.mark.parametrize("case", list(CASES))
def test_gru_gradients_match_tensorflows_gradient_of_the_stock_layer(native, case):
    args, lengths, probes = _case(case)
    outputs, grads = _native_gradients(args, lengths, probes)
    want = _reference(args, lengths)
    for got, key in zip(outputs, OUTPUTS, strict=True):
        assert np.abs(got - want[key]).max() <= ATOL_FORWARD, key
    for name, got, expected in zip(NAMES, grads, _keras_gradients(args, lengths, probes), strict=True):
        assert got.shape == expected.shape and got.dtype == np.float32, name
        assert relative(got, expected) <= RTOL, name
    # Threads split the rows, and a row's sums never depend on which thread ran it.
    again = _native_gradients(args, lengths, probes)
    single = _native_gradients(args, lengths, probes, max_threads=1)
    two = _native_gradients(args, lengths, probes, max_threads=2)
    for a, b, c, d in zip(outputs + grads, again[0] + again[1], single[0] + single[1], two[0] + two[1],
                          strict=True):
        assert a.tobytes() == b.tobytes() == c.tobytes() == d.tobytes()


def _reference_loss(args64, lengths, probes):
    out = _reference(args64, lengths)
    return sum(float(np.sum(out[k] * p)) for k, p in zip(OUTPUTS, probes, strict=True))


@pytest.mark.slow
def test_gru_gradients_match_finite_differences_of_the_float64_reference(native):
    args, lengths, probes = _case("tiny")
    lengths = np.array([3, 2], np.int32)  # one row stops early
    _, grads = _native_gradients(args, lengths, probes)
    args64 = [a.astype(np.float64) for a in args]
    numeric = central_differences(lambda a: _reference_loss(a, lengths, probes), args64)
    for name, grad, want in zip(NAMES, grads, numeric, strict=True):
        assert relative(grad, want) <= RTOL, name


@pytest.mark.slow
def test_a_gru_run_records_the_native_training_engine_and_reruns_bit_for_bit(native, tmp_path):
    run = record(tmp_path, "model=gru", "task=adding", "model.implementation=native", "task.epochs=1",
                 "task.train_size=64", "task.val_size=16", "task.timesteps=8")
    tags = MlflowClient(run.uri).get_run(run.run_id).data.tags
    assert f"training: native ({native.build.isa}) (model.implementation=native)" in tags["lstm_exp.engine"]
    proc = run_cli(run.run_id, module="lstm_exp.rerun", cwd=tmp_path)  # trains again, compares every array
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "weights:layer_0/kernel" in proc.stdout and "identical" in proc.stdout


# The forward engine: `NativeGRUStack`, and `native` / `auto` for GRU runs.


@pytest.mark.slow
@pytest.mark.parametrize("units", [(37, 70), (16,)])
def test_native_gru_stack_matches_the_float64_reference(native, units):
    import tensorflow as tf

    from lstm_exp.compute.native.gru_engine import NativeGRUStack

    spec = ModelSpec("gru", units)
    weights = initial_weights(spec, 9, 4)
    rng = np.random.default_rng(5)
    x = rng.standard_normal((33, 6, 9)).astype(np.float32)
    lengths = rng.integers(1, 7, 33).astype(np.int32)
    state = {f"layer_{k}/h": rng.uniform(-1, 1, (33, u)).astype(np.float32) for k, u in enumerate(units)}
    want = reference_forward(spec, weights, x, lengths, state)
    stack = NativeGRUStack(weights)
    fn = tf.function(stack.__call__)
    for got in (stack(x, lengths, state), fn(x, lengths, state)):
        assert set(got) == {k for k in want if k.startswith("layer_")}
        for key, value in got.items():
            assert np.abs(value.numpy() - want[key]).max() <= ATOL_FORWARD, key
    single = NativeGRUStack(weights, max_threads=1)(x, lengths, state)
    for key, value in stack(x, lengths, state).items():
        assert value.numpy().tobytes() == single[key].numpy().tobytes(), key


@pytest.mark.slow
def test_a_gru_run_with_native_runs_its_forward_on_the_op_too(native):
    import lstm_exp
    from lstm_exp.config.experiment import parse
    from lstm_exp.record.artifacts import description_tags

    cfg = lstm_exp.compose("tracking.enabled=false", "model=gru", "model.implementation=native",
                           "input.lengths=[3,2]")
    result = lstm_exp.execute(cfg)
    label = f"native ({native.build.isa})"
    assert result.engine == "native" and description_tags(parse(cfg), result)["lstm_exp.engine"] == label
    assert result.reference_max_abs_err <= ATOL_FORWARD
    stock = lstm_exp.execute(lstm_exp.compose("tracking.enabled=false", "model=gru",
                                              "model.implementation=keras", "input.lengths=[3,2]"))
    assert result.arrays.keys() == stock.arrays.keys()
    for key, value in stock.arrays.items():
        np.testing.assert_allclose(result.arrays[key], value, rtol=0, atol=1e-5, err_msg=key)


@pytest.mark.slow
def test_a_gru_forward_falls_back_to_stock_keras_with_one_line_naming_why(monkeypatch, caplog):
    import lstm_exp

    monkeypatch.setenv("LSTM_EXP_NATIVE_DISABLE", "1")
    with caplog.at_level(logging.WARNING, logger="lstm_exp"):
        result = lstm_exp.execute(lstm_exp.compose("tracking.enabled=false", "model=gru",
                                                   "model.implementation=native"))
    assert result.engine == "keras" and result.reference_max_abs_err <= ATOL_FORWARD
    lines = [r.getMessage() for r in caplog.records if "native GRU engine" in r.getMessage()]
    assert len(lines) == 1 and "running keras instead" in lines[0]
