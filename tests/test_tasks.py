"""The synthetic tasks' data (`compute/tasks.py`): shapes, ranges, targets and baselines recomputed by hand
here; and `task.*` validation (`config/task_validate.py`) through the real config."""

import math

import numpy as np
import pytest

import lstm_exp
from lstm_exp.compute import tasks
from lstm_exp.compute.runner import prepare
from lstm_exp.config.experiment import parse
from lstm_exp.errors import ConfigError


def _task(name: str, *overrides: str):
    small = ("task.train_size=40", "task.val_size=30", "task.batch_size=8")
    return lstm_exp.compose("tracking.enabled=false", f"task={name}", *small, *overrides).task


@pytest.mark.parametrize("name", tasks.TASKS)
def test_shapes_dtypes_and_determinism(name):
    task = _task(name)
    data = tasks.make_task(task, seed=3)
    steps, width = task.timesteps, tasks.features(task)
    assert data.x_train.shape == (40, steps, width) and data.x_val.shape == (30, steps, width)
    assert data.x_train.dtype == np.float32
    target = (30,) if name == "copy" else (30, 1) if name == "adding" else (30, steps, tasks.outputs(task))
    assert data.y_val.shape[: len(target)] == target
    again = tasks.make_task(task, seed=3)
    assert data.x_train.tobytes() == again.x_train.tobytes() and data.y_val.tobytes() == again.y_val.tobytes()
    assert not np.array_equal(tasks.make_task(task, seed=4).x_train, data.x_train)
    assert not np.array_equal(data.x_train[:30], data.x_val)  # the splits are different draws
    assert tasks.held_out(task, 3)[0].shape == (tasks.HELD_OUT, steps, width)


def test_adding_marks_targets_and_constant_one_baseline():
    task = _task("adding", "task.timesteps=10")
    data = tasks.make_task(task, seed=0)
    values, marks = data.x_val[..., 0], data.x_val[..., 1]
    assert ((values >= 0) & (values <= 1)).all()
    for row in range(30):
        first, second = np.flatnonzero(marks[row])
        assert first < 5 <= second  # one mark in each half
        assert data.y_val[row, 0] == pytest.approx(values[row, first] + values[row, second])
    by_hand = sum((float(y) - 1.0) ** 2 for y in data.y_val[:, 0]) / 30
    assert data.baseline_loss == pytest.approx(by_hand, rel=1e-6)
    assert abs(tasks.make_task(_task("adding", "task.val_size=20000"), 0).baseline_loss - 1 / 6) < 0.01


def test_copy_layout_and_memoryless_baseline():
    task = _task("copy", "task.timesteps=9", "task.copy_length=3", "task.symbols=4")
    data = tasks.make_task(task, seed=0)
    codes = data.x_val.argmax(-1)  # one-hot over 4 symbols, blank (4), delimiter (5)
    assert (data.x_val.sum(-1) == 1).all()
    assert (codes[:, :3] < 4).all() and (codes[:, 3:5] == 4).all() and (codes[:, 5] == 5).all()
    assert (codes[:, 6:] == 4).all()
    assert (data.y_val[:, :6] == 4).all() and (data.y_val[:, 6:] == codes[:, :3]).all()
    # The memoryless predictor: blank with certainty for 6 steps, then 1/4 for each symbol.
    probs = np.zeros((30, 9, 5))
    probs[:, :6, 4] = 1.0
    probs[:, 6:, :4] = 0.25
    by_hand = -np.mean(np.log(np.take_along_axis(probs, data.y_val[..., None], axis=-1)))
    assert data.baseline_loss == pytest.approx(by_hand) == pytest.approx(3 * math.log(4) / 9)
    assert data.loss == "crossentropy"


def test_flipflop_holds_the_last_pulse():
    task = _task("flipflop", "task.timesteps=12", "task.pulse_prob=0.3")
    data = tasks.make_task(task, seed=0)
    assert set(np.unique(data.x_val)) <= {-1.0, 0.0, 1.0} and (data.x_val[:, 0] != 0).all()
    expected = np.zeros_like(data.y_val)
    for b in range(30):
        for c in range(3):
            held = 0.0
            for t in range(12):
                held = data.x_val[b, t, c] if data.x_val[b, t, c] != 0 else held
                expected[b, t, c] = held
    np.testing.assert_array_equal(data.y_val, expected)
    assert data.baseline_loss == 1.0  # answering 0 to targets of +-1


def test_sine_next_value_and_persistence_baseline():
    data = tasks.make_task(_task("sine", "task.timesteps=16"), seed=0)
    np.testing.assert_array_equal(data.y_val[:, :-1], data.x_val[:, 1:])
    assert np.abs(data.x_val).max() <= 1.0
    by_hand = np.mean([(float(data.y_val[b, t, 0]) - float(data.x_val[b, t, 0])) ** 2
                       for b in range(30) for t in range(16)])
    assert data.baseline_loss == pytest.approx(by_hand, rel=1e-6)


@pytest.mark.parametrize("overrides, key", [
    (("task=adding", "task.name=parity"), "task.name"),
    (("task=adding", "task.train_size=0"), "task.train_size"),
    (("task=adding", "task.val_size=-1"), "task.val_size"),
    (("task=adding", "task.epochs=0"), "task.epochs"),
    (("task=adding", "task.timesteps=1"), "task.timesteps"),
    (("task=adding", "task.timesteps=100000000"), "task.timesteps"),
    (("task=adding", "task.batch_size=4000"), "task.batch_size"),  # more than train_size
    (("task=adding", "task.learning_rate=0"), "task.learning_rate"),
    (("task=adding", "task.train_size=1000000", "task.timesteps=10000"), "task.train_size"),
    (("task=copy", "task.timesteps=10"), "task.timesteps"),  # 2 * copy_length + 1 = 11 steps needed
    (("task=copy", "task.symbols=1"), "task.symbols"),
    (("task=flipflop", "task.pulse_prob=0"), "task.pulse_prob"),
    (("task=sine", "model.bidirectional=true"), "model.bidirectional"),
    (("task=flipflop", "model.bidirectional=true"), "model.bidirectional"),
    (("task=copy", "model.bidirectional=true"), "model.bidirectional"),
    (("task=adding", "input.lengths=[1]"), "input.lengths"),
])
def test_bad_task_settings_name_the_key(overrides, key):
    with pytest.raises(ConfigError) as caught:
        prepare(parse(lstm_exp.compose("tracking.enabled=false", *overrides)))
    assert caught.value.key == key


def test_bidirectional_adding_and_no_task_are_accepted():
    cfg = lstm_exp.compose("tracking.enabled=false", "task=adding", "model.bidirectional=true")
    prepared = prepare(parse(cfg))
    assert prepared.data.x.shape == (tasks.HELD_OUT, 20, 2)
    assert prepare(parse(lstm_exp.compose("tracking.enabled=false"))).data.x.shape == (1, 1, 6)
