"""Engine choice: `auto` picks a valid engine for the size; fused and stock Keras agree through the app."""

import numpy as np
import pytest
from conftest import compose

import lstm_exp
from lstm_exp.compute.engines import choose_engine
from lstm_exp.config.specs import ModelSpec
from lstm_exp.errors import ConfigError

AGREEMENT = 1e-5  # float32, two engines on the same weights


def test_auto_is_measured_for_plain_lstm_stacks_at_every_size():
    spec = ModelSpec("lstm", (4, 5))
    assert choose_engine(spec, (2, 3, 6)) == "auto"  # measured where the engine is built
    assert choose_engine(spec, (10_000, 100, 6)) == "auto"
    assert choose_engine(ModelSpec("gru", (4, 5)), (2, 3, 6)) == "auto"  # native or keras, measured
    for unsupported in (ModelSpec("gru", (4,), bidirectional=True), ModelSpec("simple_rnn", (4,)),
                        ModelSpec("lstm", (4,), bidirectional=True), ModelSpec("lstm", (4,), peepholes=True)):
        assert choose_engine(unsupported, (10_000, 100, 6)) == "keras"


@pytest.mark.parametrize(("engine", "model"), [
    *((e, m) for e in ("fused", "native") for m in ("model.bidirectional=true", "model.peepholes=true",
                                                     "model.cell=simple_rnn")),
    ("fused", "model.cell=gru"),
    ("native", "model=gru model.bidirectional=true"),
])
def test_fused_and_native_are_refused_for_models_they_do_not_compute(engine, model):
    with pytest.raises(ConfigError, match="model.implementation"):
        lstm_exp.parse(compose(*model.split(), f"model.implementation={engine}"))


def test_native_takes_plain_gru_stacks():
    spec = lstm_exp.parse(compose("model=gru", "model.implementation=native")).model
    assert (spec.cell, spec.implementation) == ("gru", "native")


@pytest.mark.slow
@pytest.mark.parametrize("extra", [
    (),
    ("input.lengths=[3,1,2]", "input.initial_state=random"),
    ("run.repeat=5",),  # timed: XLA-compiled fused, tf.function stock Keras
])
def test_fused_equals_stock_keras_through_the_app(extra):
    base = ("model=stacked", "input=random", "input.batch=3", "model.units=[6,5,4]", "seed=5", *extra)
    fused = lstm_exp.execute(compose(*base, "model.implementation=fused"))
    stock = lstm_exp.execute(compose(*base, "model.implementation=keras"))
    assert (fused.engine, stock.engine) == ("fused", "keras")
    assert fused.arrays.keys() == stock.arrays.keys()
    for name in stock.arrays:
        np.testing.assert_allclose(fused.arrays[name], stock.arrays[name], rtol=0, atol=AGREEMENT)
    assert fused.reference_max_abs_err <= 1e-6
    if "run.repeat=5" in extra:
        assert fused.timings["forward_ms"] > 0 and fused.timings["forward_gflops"] > 0
