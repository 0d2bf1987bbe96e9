"""The training controls (`compute/training_controls.py`): each schedule's rate per epoch against the
formula written out here and against Keras' own schedules; clipping and weight decay against Adam
computed by hand in float64; early stopping in a real training, its restored weights against a
training that simply ran to the best epoch."""

import math

import numpy as np
import pytest

import lstm_exp
from lstm_exp.compute import tasks
from lstm_exp.compute.initializers import initial_weights
from lstm_exp.compute.trainer import Trainer
from lstm_exp.compute.training import train
from lstm_exp.compute.training_controls import learning_rate, make_optimizer
from lstm_exp.config.experiment import parse
from lstm_exp.config.specs import ControlsSpec, ModelSpec

TINY = ("task.timesteps=6", "task.train_size=48", "task.val_size=16", "task.batch_size=16")
RATE_TOLERANCE = 1e-12  # the same float64 formula, evaluated in another order
ADAM_TOLERANCE = 2e-6  # float32 Keras against float64 NumPy, a few steps of values ~1


def _hand_rate(schedule, base, epoch, epochs, warmup=0, size=10, factor=0.5):
    if epoch < warmup:
        return base * (epoch + 1) / (warmup + 1)
    t, span = epoch - warmup, epochs - warmup
    return {"constant": base, "cosine": base * (1 + math.cos(math.pi * t / span)) / 2,
            "step": base * factor ** (t // size)}[schedule]


@pytest.mark.parametrize("schedule", ["constant", "cosine", "step"])
@pytest.mark.parametrize("warmup", [0, 3])
def test_rate_per_epoch_follows_the_formula_and_keras_schedules(schedule, warmup):
    import keras

    epochs, base = 20, 0.01
    controls = ControlsSpec(schedule=schedule, warmup_epochs=warmup, step_size=4, step_factor=0.3)
    rates = [learning_rate(controls, base, e, epochs) for e in range(epochs)]
    hand = [_hand_rate(schedule, base, e, epochs, warmup, 4, 0.3) for e in range(epochs)]
    np.testing.assert_allclose(rates, hand, rtol=RATE_TOLERANCE, atol=0)
    if warmup:  # linear up to the base rate, which the first epoch after warm-up has
        assert rates[:warmup + 1] == pytest.approx([base * (e + 1) / (warmup + 1) for e in range(warmup)]
                                                   + [base], rel=RATE_TOLERANCE)
    schedules = keras.optimizers.schedules
    keras_schedule = {"constant": lambda step: base,
                      "cosine": schedules.CosineDecay(base, epochs - warmup),
                      "step": schedules.ExponentialDecay(base, 4, 0.3, staircase=True)}[schedule]
    after = [float(keras_schedule(e - warmup)) for e in range(warmup, epochs)]
    np.testing.assert_allclose(rates[warmup:], after, rtol=1e-5, atol=base * 1e-6)  # Keras: float32


def _hand_adam(values, gradients, rate, decay=0.0, clip=None, global_clip=None):
    """Keras 3 Adam (beta 0.9 / 0.999, epsilon 1e-7) in float64, clipping and decoupled decay first."""
    values = [np.asarray(v, np.float64) for v in values]
    m = [np.zeros_like(v) for v in values]
    s = [np.zeros_like(v) for v in values]
    for t, grads in enumerate(gradients, start=1):
        grads = [np.asarray(g, np.float64) for g in grads]
        if clip is not None:
            grads = [g * clip / max(np.linalg.norm(g), clip) for g in grads]
        if global_clip is not None:
            norm = math.sqrt(sum(float(np.sum(g * g)) for g in grads))
            grads = [g * global_clip / max(norm, global_clip) for g in grads]
        alpha = rate * math.sqrt(1 - 0.999**t) / (1 - 0.9**t)
        for i, g in enumerate(grads):
            values[i] = values[i] - values[i] * decay * rate
            m[i] = 0.9 * m[i] + 0.1 * g
            s[i] = 0.999 * s[i] + 0.001 * g * g
            values[i] = values[i] - alpha * m[i] / (np.sqrt(s[i]) + 1e-7)
    return values


def _keras_steps(controls, values, gradients, rate=0.1):
    import keras

    variables = [keras.Variable(np.asarray(v, np.float32)) for v in values]
    optimizer = make_optimizer(keras, rate, controls)
    optimizer.build(variables)
    for grads in gradients:
        optimizer.apply_gradients(zip([np.asarray(g, np.float32) for g in grads], variables, strict=True))
    return [np.asarray(v.numpy(), np.float64) for v in variables]


# Two variables, three steps whose gradients differ in size by 100x: clipping changes the direction
# Adam's moments average over, so an unclipped optimizer ends elsewhere.
VALUES = [np.array([1.0, -2.0, 0.5]), np.array([[0.3, -0.7]])]
GRADIENTS = [[np.array([30.0, -40.0, 0.0]), np.array([[5.0, 12.0]])],
             [np.array([0.3, 0.4, -0.1]), np.array([[-0.05, 0.12]])],
             [np.array([-3.0, 4.0, 1.0]), np.array([[0.5, -1.2]])]]


@pytest.mark.parametrize("controls, hand", [
    (ControlsSpec(), {}),
    (ControlsSpec(clipnorm=1.0), {"clip": 1.0}),
    (ControlsSpec(global_clipnorm=0.5), {"global_clip": 0.5}),
    (ControlsSpec(weight_decay=0.2), {"decay": 0.2}),
    (ControlsSpec(clipnorm=2.0, weight_decay=0.05), {"clip": 2.0, "decay": 0.05}),
], ids=["plain", "clipnorm", "global_clipnorm", "weight_decay", "clipnorm+decay"])
def test_clipping_and_weight_decay_match_adam_by_hand(controls, hand):
    got = _keras_steps(controls, VALUES, GRADIENTS)
    expected = _hand_adam(VALUES, GRADIENTS, 0.1, **hand)
    for g, e in zip(got, expected, strict=True):
        np.testing.assert_allclose(g, e, rtol=0, atol=ADAM_TOLERANCE)
    if hand:  # the control mattered: plain Adam ends elsewhere
        plain = _hand_adam(VALUES, GRADIENTS, 0.1)
        assert max(np.max(np.abs(g - p)) for g, p in zip(got, plain, strict=True)) > 100 * ADAM_TOLERANCE


def test_one_step_of_weight_decay_by_hand():
    # One step from w0 with gradient g: w0 (1 - lr wd) - lr g / (|g| + eps), Adam's first step.
    w0, g, rate, decay = np.array([2.0, -1.0]), np.array([0.5, 0.25]), 0.1, 0.3
    (got,) = _keras_steps(ControlsSpec(weight_decay=decay), [w0], [[g]], rate)
    np.testing.assert_allclose(got, w0 * (1 - rate * decay) - rate * g / (np.abs(g) + 1e-7),
                               rtol=0, atol=ADAM_TOLERANCE)


def _task(*overrides):
    cfg = lstm_exp.compose("tracking.enabled=false", "task=adding", "model.units=[3]", *TINY, *overrides)
    return parse(cfg).task


@pytest.mark.slow
def test_trainer_gets_the_configured_optimizer_and_rates():
    spec = ModelSpec("lstm", (3,))
    task = _task("task.global_clipnorm=0.5", "task.weight_decay=0.01", "task.epochs=3", "task.schedule=step",
                 "task.step_size=1", "task.step_factor=0.5")
    trainer = Trainer(task, spec, initial_weights(spec, tasks.features(task), 0), 0)
    assert (trainer.optimizer.global_clipnorm, trainer.optimizer.weight_decay) == (0.5, 0.01)
    assert trainer.optimizer.clipnorm is None
    result = train(task, spec, initial_weights(spec, tasks.features(task), 0), 0)
    assert result.learning_rates == [0.01, 0.005, 0.0025]


@pytest.mark.slow
def test_early_stopping_restores_the_best_epochs_weights():
    import keras

    spec = ModelSpec("lstm", (3,))
    # A min_delta no loss can beat: no epoch after the first improves, so training stops after epoch 1
    # (patience 1) and ends with the weights of epoch 0, as Keras' callback would on this history.
    stopping = _task("task.epochs=6", "task.patience=1", "task.min_delta=100",
                     "task.restore_best_weights=true")
    result = train(stopping, spec, initial_weights(spec, 2, 0), 0)
    assert (result.stopped_epoch, result.best_epoch, len(result.val_loss)) == (1, 0, 2)
    callback = keras.callbacks.EarlyStopping(patience=1, min_delta=100)
    callback.set_model(keras.Sequential())
    callback.on_train_begin()
    for epoch, loss in enumerate(result.val_loss):
        callback.on_epoch_end(epoch, {"val_loss": loss})
    assert callback.stopped_epoch == 1
    one_epoch = train(_task("task.epochs=1"), spec, initial_weights(spec, 2, 0), 0)
    for name, value in one_epoch.weights.items():
        assert value.tobytes() == result.weights[name].tobytes(), name
    for name, value in one_epoch.readout.items():
        assert value.tobytes() == result.readout[name].tobytes(), name
