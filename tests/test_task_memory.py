"""The training memory estimate (`config/task_memory.py`): its terms against a hand computation, its
monotony in every size, and `run.max_memory_gb` checked against the same figure the dry run prints.

The estimate's fit to real peaks is measured by scripts/bench_memory.py (not a test: peaks are the
machine's); these tests pin what the formula is.
"""

import dataclasses

import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis_budget import budget

import lstm_exp
from lstm_exp.config.experiment import estimate_run, parse
from lstm_exp.config.memory import TF_BASE_BYTES
from lstm_exp.config.specs import ModelSpec
from lstm_exp.config.task_memory import (
    ACTIVATION_FLOATS,
    EVAL_FLOATS,
    SEQUENCE_GRAD_FLOATS,
    STEP_WEIGHT_FLOATS,
    TRAINING_EXTRA_BYTES,
    TrainingSizes,
    task_sizes,
    training_bytes,
    training_peak_bytes,
)
from lstm_exp.errors import ConfigError

MIB = 2**20


def test_a_gradient_bound_run_is_the_base_the_data_the_weights_and_one_batch_gradient():
    # task=sine [256], T=100, batch 1024: the bench's "activations" size, computed by hand.
    task = lstm_exp.compose("task=sine", "model.units=[256]", "task.timesteps=100", "task.train_size=4096",
                            "task.val_size=1024", "task.batch_size=1024").task
    sizes = task_sizes(task)
    assert (sizes.features, sizes.target_values, sizes.outputs, sizes.per_step) == (1, 100, 1, True)
    kept = 4 * (4096 + 1024) * (100 * 1 + 100)  # x and y, float32, both splits
    layer_weights = (1 + 256 + 2) * 4 * 256
    weights = layer_weights + (256 + 1) * 1  # the stack and the readout
    per_sequence_step = ((ACTIVATION_FLOATS["lstm"] + SEQUENCE_GRAD_FLOATS) * 256 + 1
                         + STEP_WEIGHT_FLOATS * layer_weights / 1024)
    gradient = 4 * 100 * 1024 * per_sequence_step
    evaluation = 4 * 100 * 1024 * (EVAL_FLOATS["lstm"] * 256 + 1)
    assert gradient > evaluation
    expected = TF_BASE_BYTES + int(TRAINING_EXTRA_BYTES + kept + 16 * weights + gradient)
    assert training_peak_bytes(sizes, ModelSpec("lstm", (256,))) == expected
    assert abs(expected / MIB - 2057) < 1  # the README's table


def test_a_data_bound_run_is_the_base_and_drawing_the_larger_split():
    # flipflop, 200000 sequences of T=100: drawing the training split (34 bytes per input value:
    # signs, pulses, x, the last pulse's index twice, y) is larger than anything training holds.
    task = lstm_exp.compose("task=flipflop", "model.units=[4]", "task.timesteps=100",
                            "task.train_size=200000", "task.val_size=2000", "task.batch_size=1024").task
    drawing = 200000 * 100 * 3 * 34
    assert training_peak_bytes(task_sizes(task), ModelSpec("lstm", (4,))) == TF_BASE_BYTES + drawing
    # copy: a float64 one-hot and its float32 copy per input value, int64 codes and int32 y per step.
    task = lstm_exp.compose("task=copy", "task.symbols=32", "model.units=[16]", "task.timesteps=100",
                            "task.train_size=50000", "task.val_size=1000", "task.batch_size=512").task
    drawing = 50000 * 100 * (12 * 34 + 12)
    assert training_peak_bytes(task_sizes(task), ModelSpec("lstm", (16,))) == TF_BASE_BYTES + drawing


def test_the_validation_chunk_counts_when_it_is_larger_than_a_batch():
    sizes = TrainingSizes(train_size=64, val_size=4096, timesteps=200, features=1, target_values=200,
                          outputs=1, per_step=True, batch_size=32, draw_bytes=24)
    kept = 4 * (64 + 4096) * (200 + 200)
    weights = (1 + 64 + 2) * 4 * 64 + 65
    evaluation = 4 * 200 * 1024 * (EVAL_FLOATS["lstm"] * 64 + 1)  # the chunk is 1024 sequences, not 4096
    expected = TF_BASE_BYTES + int(TRAINING_EXTRA_BYTES + kept + 16 * weights + evaluation)
    assert training_peak_bytes(sizes, ModelSpec("lstm", (64,))) == expected


def test_deeper_layers_count_their_input_once_and_cells_by_their_own_floats():
    sizes = TrainingSizes(512, 1, 100, 1, 100, 1, True, 512, 24)
    one = training_peak_bytes(sizes, ModelSpec("lstm", (128,)))
    two = training_peak_bytes(sizes, ModelSpec("lstm", (128, 128)))
    second_weights = (128 + 128 + 2) * 4 * 128
    second = 4 * 100 * 512 * ((ACTIVATION_FLOATS["lstm"] + SEQUENCE_GRAD_FLOATS) * 128
                              + STEP_WEIGHT_FLOATS * second_weights / 512)
    assert two - one == pytest.approx(second + 16 * second_weights, abs=2)  # its input is layer 0's sequence
    by_cell = [training_peak_bytes(sizes, ModelSpec(cell, (128,))) for cell in ("simple_rnn", "gru", "lstm")]
    assert by_cell == sorted(by_cell) and len(set(by_cell)) == 3
    assert training_peak_bytes(sizes, ModelSpec("lstm", (128,), peepholes=True)) > by_cell[-1]  # TF1-style
    final_state = training_peak_bytes(dataclasses.replace(sizes, per_step=False, target_values=1),
                                      ModelSpec("lstm", (128,)))
    assert final_state < one


SIZE_FIELDS = ("train_size", "val_size", "timesteps", "features", "target_values", "outputs", "batch_size")


@budget(40)
@given(
    sizes=st.builds(TrainingSizes, **{f: st.integers(1, 5000) for f in SIZE_FIELDS}, per_step=st.booleans(),
                    draw_bytes=st.sampled_from([12, 16, 24, 34]), draw_step_bytes=st.sampled_from([0, 12])),
    units=st.lists(st.integers(1, 600), min_size=1, max_size=3),
    cell=st.sampled_from(["lstm", "gru", "simple_rnn"]),
    bidirectional=st.booleans(),
    peepholes=st.booleans(),
    grow=st.sampled_from((*SIZE_FIELDS, "units")),
    by=st.integers(1, 3000),
)
def test_the_estimate_never_falls_when_a_size_grows(sizes, units, cell, bidirectional, peepholes, grow, by):
    spec = ModelSpec(cell, tuple(units), bidirectional=bidirectional, peepholes=peepholes and cell == "lstm")
    before = training_peak_bytes(sizes, spec)
    if grow == "units":
        bigger = (sizes, dataclasses.replace(spec, units=(*units[:-1], units[-1] + by)))
    else:
        bigger = (dataclasses.replace(sizes, **{grow: getattr(sizes, grow) + by}), spec)
    assert training_peak_bytes(*bigger) >= before
    assert before >= TF_BASE_BYTES + TRAINING_EXTRA_BYTES


def test_max_memory_is_checked_against_the_estimate_the_dry_run_prints():
    overrides = ("tracking.enabled=false", "task=sine", "model.units=[64]", "task.batch_size=512")
    experiment = parse(lstm_exp.compose(*overrides))
    estimate = estimate_run(experiment, {})
    assert estimate == TF_BASE_BYTES + training_bytes(experiment.task, experiment.model)
    with pytest.raises(ConfigError, match="task.train_size"):
        parse(lstm_exp.compose(*overrides, f"run.max_memory_gb={estimate / 2**30 * 0.999}"))
    parse(lstm_exp.compose(*overrides, f"run.max_memory_gb={estimate / 2**30 * 1.001}"))
