"""`auto` for the forward pass (`compute/forward_choice.py`): measured with real TensorFlow engines on
first use per mode and shape class, kept in a real ``choices.json`` (here in tmp_path), never slower
than stock Keras, and named in the run's `lstm_exp.engine` tag.

The timings themselves are never asserted on (the machine is shared): only what is measured, kept
and decided. Arrays: 1e-6 absolute against the float64 reference, as for every engine.
"""

import json
import logging

import numpy as np
import pytest
from conftest import compose
from hypothesis import given
from hypothesis import strategies as st
from hypothesis_budget import budget

import lstm_exp
from lstm_exp.compute.engine_choice import CHOICES, measured_choice, read_choices
from lstm_exp.compute.engines import choose_engine
from lstm_exp.compute.forward_choice import auto_forward, candidate_engines, forward_mode
from lstm_exp.compute.initializers import initial_weights
from lstm_exp.compute.inputs import InputData
from lstm_exp.compute.native.cache import DISABLE_ENV
from lstm_exp.compute.reference import max_abs_err, reference_forward
from lstm_exp.config import names
from lstm_exp.config.specs import ModelSpec

ATOL = 1e-6


def _case(lengths=True):
    rng = np.random.default_rng(3)
    spec = ModelSpec("lstm", (4, 5))  # implementation=auto
    x = rng.standard_normal((3, 5, 6)).astype(np.float32)
    rows = np.array([1, 5, 3], np.int32) if lengths else None  # a row that stops after its first step
    return spec, initial_weights(spec, 6, 3), InputData(x, False, rows, {})


def _arrays(run):
    return {name: np.asarray(value) for name, value in run().items()}


def _checked(spec, weights, data, arrays):
    want = reference_forward(spec, weights, data.x, data.lengths, data.initial_state)
    assert max_abs_err(arrays, want) <= ATOL


def test_a_single_pass_times_fused_only_where_native_cannot_run(monkeypatch):
    spec = ModelSpec("lstm", (4, 5))
    if candidate_engines(spec, 0)[1]:
        pytest.skip("the native op cannot be built here")
    assert candidate_engines(spec, 0) == (("native", "keras"), "")  # fused's trace would cost the pass
    assert candidate_engines(spec, 5) == (("native", "fused", "keras"), "")
    assert candidate_engines(ModelSpec("gru", (4,)), 5) == (("native", "keras"), "")  # fused: LSTM only
    assert candidate_engines(ModelSpec("simple_rnn", (4,)), 5) == (("keras",), "")
    monkeypatch.setenv(DISABLE_ENV, "1")
    engines, why = candidate_engines(spec, 0)
    assert engines == ("fused", "keras") and DISABLE_ENV in why
    engines, why = candidate_engines(ModelSpec("gru", (4,)), 0)
    assert engines == ("keras",) and DISABLE_ENV in why


def test_auto_stays_auto_until_the_engine_is_built():
    assert choose_engine(ModelSpec("lstm", (4, 5)), (2, 3, 6)) == "auto"  # measured in build_forward
    assert choose_engine(ModelSpec("gru", (4, 5)), (2, 3, 6)) == "auto"
    for unsupported in (ModelSpec("simple_rnn", (4, 5)), ModelSpec("lstm", (4,), bidirectional=True),
                        ModelSpec("lstm", (4,), peepholes=True)):
        assert choose_engine(unsupported, (2, 3, 6)) == "keras"  # the one engine that computes it
    assert [forward_mode(n) for n in (0, 1, 4, 5, 50)] == [
        "forward", "forward-timed", "forward-timed", "forward-timed-xla", "forward-timed-xla"]


@pytest.mark.parametrize("timed", [0, 5])
def test_measured_once_per_mode_then_kept_and_repeated_bit_for_bit(tmp_path, timed):
    spec, weights, data = _case()
    engines, _ = candidate_engines(spec, timed)
    engine, why, run = auto_forward(spec, weights, data, timed, folder=tmp_path)
    assert engine in engines and why.startswith("auto, measured ")
    for other in engines:
        assert other == engine or f"{other} " in why  # every candidate's time is in the tag
    key = f"{forward_mode(timed)} B4 T8 F8 U4-8"
    kept = read_choices(tmp_path / CHOICES)
    assert list(kept) == [key] and set(kept[key]["median_ms"]) == set(engines)
    assert kept[key]["engine"] == engine
    first = _arrays(run)
    _checked(spec, weights, data, first)  # input.lengths: TF1 semantics, gates included
    assert {names.array_name(k, part) for k in (0, 1) for part in names.GATE_PARTS} <= set(first)
    again_engine, again_why, again = auto_forward(spec, weights, data, timed, folder=tmp_path)
    assert again_engine == engine and again_why.startswith("auto, kept choice (measured ")
    second = _arrays(again)
    assert all(first[n].tobytes() == second[n].tobytes() for n in first)


def test_a_corrupt_choices_file_is_ignored_with_one_warning_and_measured_again(tmp_path, caplog):
    (tmp_path / CHOICES).write_text('{"forward B4 T8 F8 U4-8": {"engine": 3}')
    spec, weights, data = _case(lengths=False)
    with caplog.at_level(logging.WARNING, logger="lstm_exp"):
        engine, why, run = auto_forward(spec, weights, data, 0, folder=tmp_path)
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1 and "ignoring the engine choices" in warnings[0], warnings
    assert why.startswith("auto, measured ")
    assert json.loads((tmp_path / CHOICES).read_text())["forward B4 T8 F8 U4-8"]["engine"] == engine
    _checked(spec, weights, data, _arrays(run))


def test_without_native_auto_measures_keras_and_fused_with_one_line(tmp_path, monkeypatch, caplog):
    monkeypatch.setenv(DISABLE_ENV, "1")
    spec, weights, data = _case()
    with caplog.at_level(logging.INFO, logger="lstm_exp.compute.forward_choice"):
        engine, why, run = auto_forward(spec, weights, data, 0, folder=tmp_path)
    (line,) = [r.getMessage() for r in caplog.records if "native LSTM engine unavailable" in r.getMessage()]
    assert f"disabled by {DISABLE_ENV}=1" in line
    assert engine in ("keras", "fused") and "native" not in why  # fused timed: no native to run instead
    assert set(read_choices(tmp_path / CHOICES)["forward B4 T8 F8 U4-8"]["median_ms"]) == {"keras", "fused"}
    _checked(spec, weights, data, _arrays(run))


@given(st.dictionaries(st.sampled_from(["native", "fused"]), st.floats(0.0, 1e4, allow_nan=False),
                       min_size=1),
       st.floats(0.0, 1e4, allow_nan=False))
@budget(40)
def test_never_keeps_an_engine_slower_than_stock_keras(tmp_path_factory, others, keras_ms):
    """Whatever the clock says, as the forward choice measures (one sample each, Keras last)."""
    timings = {**others, "keras": keras_ms}
    folder = tmp_path_factory.mktemp("choices")
    choice = measured_choice(folder, "forward B1 T1 F1 U1", {name: lambda: None for name in timings},
                             timing=lambda candidates: {name: timings[name] for name in candidates})
    assert timings[choice.engine] <= keras_ms
    assert choice.engine == "keras" or timings[choice.engine] < keras_ms
    assert read_choices(folder / CHOICES)["forward B1 T1 F1 U1"]["engine"] == choice.engine


@pytest.mark.slow
def test_the_engine_tag_says_what_ran_and_why():
    from lstm_exp.config.experiment import parse
    from lstm_exp.record.artifacts import description_tags

    cfg = compose("model=stacked")
    result = lstm_exp.execute(cfg)
    built = f" ({result.engine_build})" if result.engine_build else ""
    assert result.engine_why.startswith("auto, ")  # measured now, or the choice kept by an earlier run
    assert result.engine_label == f"{result.engine}{built} ({result.engine_why})"
    assert description_tags(parse(cfg), result)["lstm_exp.engine"] == result.engine_label
    assert result.reference_max_abs_err <= ATOL
