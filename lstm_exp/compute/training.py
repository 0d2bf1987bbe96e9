"""Training the configured stack on a synthetic task (`task=adding|copy|flipflop|sine`).

The stack is the forward path's own `KerasStack` (every cell and option it supports), topped by a
Dense readout: per step for copy, flipflop and sine, on the last layer's final state for adding.
Adam, a fixed batch order from a seeded NumPy permutation per epoch, NumPy-drawn readout weights
and TensorFlow's op determinism make the trained weights a function of (config, seed): bit for bit
on one machine.

    trainer = Trainer(task, spec, weights, seed)     # data, stack, readout, optimizer
    trainer.run_epoch(0) -> (train_loss, val_loss)    # what `train` loops over; bench_train times it
"""

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from lstm_exp.compute import tasks
from lstm_exp.compute.tf_runtime import load_tensorflow
from lstm_exp.config import names
from lstm_exp.config.specs import ModelSpec

EVAL_CHUNK = 1024  # validation sequences per forward call: bounds memory, keeps traces few
_READOUT_STREAM = 4  # NumPy stream ids beside tasks' splits (0-2), so that no two draws share one
_SHUFFLE_STREAM = 5


@dataclass
class TrainResult:
    """What training produced; `weights` is in the keras layout of `initializers.initial_weights`."""

    train_loss: list[float]  # per epoch: mean loss over the epoch's batches, as Keras's fit reports it
    val_loss: list[float]  # per epoch: loss on the whole validation split after the epoch
    baseline_loss: float  # the task's trivial predictor on the validation split
    train_s: float
    weights: dict[str, np.ndarray]
    readout: dict[str, np.ndarray]  # readout/kernel (H, O), readout/bias (O,)
    held_out_x: np.ndarray  # (HELD_OUT, T, F): the runner's forward pass and analyses run on these
    held_out_y: np.ndarray
    loss: str  # mse | crossentropy
    epoch_s: list[float] = field(default_factory=list)


def readout_weights(fan_in: int, size: int, seed: int) -> dict[str, np.ndarray]:
    """Glorot-uniform kernel and zero bias, drawn in NumPy like the stack's (`initializers.py`)."""
    rng = np.random.default_rng([seed, _READOUT_STREAM])
    limit = math.sqrt(6.0 / (fan_in + size))
    return {"readout/kernel": rng.uniform(-limit, limit, (fan_in, size)).astype(np.float32),
            "readout/bias": np.zeros(size, np.float32)}


class Trainer:
    """One task's data, the stack with its readout and optimizer, and compiled train/eval steps.

    Args:
        task: the validated `task` section (not `none`).
        spec: the validated model.
        weights: keras-layout starting weights for `tasks.features(task)` inputs.
        seed: the run's seed: data, readout and batch order all follow from it.
    """

    def __init__(self, task, spec: ModelSpec, weights: dict[str, np.ndarray], seed: int):
        tf = load_tensorflow(seed)
        import keras

        from lstm_exp.compute.keras_stack import KerasStack

        self.tf, self.task, self.spec, self.seed = tf, task, spec, seed
        self.data = tasks.make_task(task, seed)
        self.stack = KerasStack(spec, weights, tasks.features(task))
        last = len(spec.units) - 1
        # Per-step tasks read the last layer's sequence; adding reads its final state, which for a
        # bidirectional layer holds both directions' full passes (the sequence's last step would not).
        self._read = names.OUTPUT if self.data.per_step else names.array_name(last, names.H)
        self.readout = keras.layers.Dense(tasks.outputs(task), name="readout")
        self.readout.build((None, spec.output_size(last)))
        start = readout_weights(spec.output_size(last), tasks.outputs(task), seed)
        self.readout.kernel.assign(start["readout/kernel"])
        self.readout.bias.assign(start["readout/bias"])
        self.variables = [v for layer in self.stack.layers.values() for v in layer.trainable_weights]
        self.variables += self.readout.trainable_weights
        self.optimizer = keras.optimizers.Adam(learning_rate=task.learning_rate)
        self.optimizer.build(self.variables)
        self._train_step = tf.function(self._train_step_eager)
        self._eval = tf.function(self._loss)

    def _loss(self, x, y):
        prediction = self.readout(self.stack(x)[self._read])  # (B, O) or (B, T, O)
        if self.data.loss == "crossentropy":
            per_step = self.tf.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=prediction)
            return self.tf.reduce_mean(per_step)
        return self.tf.reduce_mean(self.tf.square(prediction - y))

    def _train_step_eager(self, x, y):
        with self.tf.GradientTape() as tape:
            loss = self._loss(x, y)
        self.optimizer.apply_gradients(zip(tape.gradient(loss, self.variables), self.variables, strict=True))
        return loss

    def run_epoch(self, epoch: int) -> tuple[float, float]:
        """One pass over the training split in a seeded order; returns (train_loss, val_loss)."""
        x, y, size = self.data.x_train, self.data.y_train, self.task.batch_size
        order = np.random.default_rng([self.seed, _SHUFFLE_STREAM, epoch]).permutation(len(x))
        total = 0.0
        for start in range(0, len(x), size):
            batch = order[start : start + size]
            total += float(self._train_step(x[batch], y[batch])) * len(batch)
        return total / len(x), self.evaluate(self.data.x_val, self.data.y_val)

    def evaluate(self, x: np.ndarray, y: np.ndarray) -> float:
        """Mean loss over (x, y), in chunks of EVAL_CHUNK sequences."""
        total = 0.0
        for start in range(0, len(x), EVAL_CHUNK):
            chunk = slice(start, start + EVAL_CHUNK)
            total += float(self._eval(x[chunk], y[chunk])) * len(x[chunk])
        return total / len(x)

    def weights(self) -> dict[str, np.ndarray]:
        """The stack's current weights under `initial_weights`' names (what KerasStack reads back)."""
        return {f"{pre}{v.name}": np.asarray(v.numpy(), np.float32)
                for pre, layer in self.stack.layers.items() for v in layer.weights}

    def readout_weights(self) -> dict[str, np.ndarray]:
        return {"readout/kernel": self.readout.kernel.numpy(), "readout/bias": self.readout.bias.numpy()}


def train(
    task,
    spec: ModelSpec,
    weights: dict[str, np.ndarray],
    seed: int,
    on_epoch: Callable[[int, float, float, float], bool | None] | None = None,
) -> TrainResult:
    """Trains the stack on `task` for `task.epochs` epochs.

    Args:
        task: the validated `task` section (not `none`).
        spec: the validated model.
        weights: keras-layout starting weights (fresh from the seed, or loaded) for the task's inputs.
        seed: the run's seed.
        on_epoch: called after each epoch as on_epoch(epoch, train_loss, val_loss, seconds), epochs
            counted from 0; seconds include the first epoch's tracing. Returning True stops training
            after that epoch (a search's pruned trial): the result holds the epochs that ran.

    Returns:
        A `TrainResult`; its weights replace the run's weights for the forward pass.

    Example:
        >>> result = train(compose("task=adding").task, spec, initial_weights(spec, 2, 0), seed=0)
        >>> result.val_loss[-1] < result.baseline_loss
        True
    """
    started = time.perf_counter()
    trainer = Trainer(task, spec, weights, seed)
    train_loss, val_loss, epoch_s = [], [], []
    for epoch in range(task.epochs):
        epoch_start = time.perf_counter()
        losses = trainer.run_epoch(epoch)
        seconds = time.perf_counter() - epoch_start
        train_loss.append(losses[0])
        val_loss.append(losses[1])
        epoch_s.append(seconds)
        if on_epoch is not None and on_epoch(epoch, losses[0], losses[1], seconds) is True:
            break
    held_x, held_y = tasks.held_out(task, seed)
    return TrainResult(train_loss, val_loss, trainer.data.baseline_loss, time.perf_counter() - started,
                       trainer.weights(), trainer.readout_weights(), held_x, held_y, trainer.data.loss,
                       epoch_s)
