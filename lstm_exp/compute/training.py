"""Training the configured stack on a synthetic task (`task=adding|copy|flipflop|sine`) or a file
(`task=file`, read and split by `file_task.py`).

The stack is the forward path's own `KerasStack` (every cell and option it supports; its variables
are what trains), computed by the engine `training_engine.py` resolves (stock Keras, or the native op
with its backward through time), topped by a Dense readout: per step for copy, flipflop and sine,
on the last layer's final state for adding.
Adam, a fixed batch order from a seeded NumPy permutation per epoch, NumPy-drawn readout weights
and TensorFlow's op determinism make the trained weights a function of (config, seed): bit for bit
on one machine.

    trainer = Trainer(task, spec, weights, seed)     # data, stack, readout, optimizer
    trainer.run_epoch(0) -> (train_loss, val_loss)    # what `train` loops over; bench_train times it

Between epochs, `training_controls.EpochControls` sets the epoch's learning rate and decides early
stopping; clipping and weight decay are the optimizer's (`training_controls.make_optimizer`).

With `Checkpointing`, `train` hands a `Checkpoint` (checkpoints.py) to its `save` every `every` epochs
and after the last (an early stop included), and a training given a `start` checkpoint goes on from
there to the same weights, bit for bit, as one that was never interrupted: the checkpoint carries early
stopping's state too (`EpochControls.state`).
"""

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from lstm_exp.compute import tasks
from lstm_exp.compute.checkpoints import Checkpoint
from lstm_exp.compute.tf_runtime import load_tensorflow
from lstm_exp.compute.training_controls import EpochControls, controls_of, make_optimizer
from lstm_exp.compute.training_engine import training_engine
from lstm_exp.config import names
from lstm_exp.config.specs import ModelSpec

EVAL_CHUNK = 1024  # validation sequences per forward call: bounds memory, keeps traces few
_READOUT_STREAM = 4  # NumPy stream ids beside tasks' splits (0-2), so that no two draws share one
_SHUFFLE_STREAM = 5
_TRAINER_PARTS = ("stack/", "readout/", "optimizer/")  # a checkpoint's arrays the Trainer restores


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
    stopped_epoch: int | None = None  # early stopping: the last epoch trained (from 0); None: not stopped
    best_epoch: int | None = None  # early stopping: the epoch of the best val_loss; None without it
    learning_rates: list[float] = field(default_factory=list)  # per epoch, when a schedule sets them
    datasets: tuple = ()  # task=file: the splits' `file_task.DatasetInfo`s
    engine: str = "keras"  # what computed the training steps: keras | native (avx512) | ...
    engine_why: str = ""  # why it did (`training_engine.py`)


@dataclass
class Checkpointing:
    """Where a training starts and where its checkpoints go.

    Args:
        every: a checkpoint after every `every` epochs (counted from the first), and after the last.
        save: called with each `Checkpoint`; None: none is taken.
        start: a checkpoint to go on from (its epochs are not trained again); None: from the start.
    """

    every: int = 1
    save: Callable[[Checkpoint], None] | None = None
    start: Checkpoint | None = None


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
        data: the task's data when already loaded (`task=file`); None: drawn from the seed.
    """

    def __init__(self, task, spec: ModelSpec, weights: dict[str, np.ndarray], seed: int,
                 data: tasks.TaskData | None = None):
        tf = load_tensorflow(seed)
        import keras

        from lstm_exp.compute.keras_stack import KerasStack

        self.tf, self.task, self.spec, self.seed = tf, task, spec, seed
        self.data = data if data is not None else tasks.make_task(task, seed)
        self.stack = KerasStack(spec, weights, self.data.x_train.shape[-1])
        last = len(spec.units) - 1
        # Per-step tasks read the last layer's sequence; adding reads its final state, which for a
        # bidirectional layer holds both directions' full passes (the sequence's last step would not).
        self._read = names.OUTPUT if self.data.per_step else names.array_name(last, names.H)
        self.readout = keras.layers.Dense(self.data.outputs, name="readout")
        self.readout.build((None, spec.output_size(last)))
        start = readout_weights(spec.output_size(last), self.data.outputs, seed)
        self.readout.kernel.assign(start["readout/kernel"])
        self.readout.bias.assign(start["readout/bias"])
        self.variables = [v for layer in self.stack.layers.values() for v in layer.trainable_weights]
        self.variables += self.readout.trainable_weights
        self.optimizer = make_optimizer(keras, task.learning_rate, controls_of(task))
        self.optimizer.build(self.variables)
        batch = (task.batch_size, *self.data.x_train.shape[1:])
        engine = training_engine(spec, self.stack, batch, self._gradient_step_on)
        self.engine, self.engine_why, self._compute = engine.label, engine.why, engine.compute
        self._train_step = tf.function(self._train_step_eager)
        self._eval = tf.function(self._loss)

    def _gradient_step_on(self, compute):
        """A call that runs `compute`'s forward and backward on the first batch, changing nothing."""
        x, y = (v[: self.task.batch_size] for v in (self.data.x_train, self.data.y_train))

        def gradients(x, y):
            with self.tf.GradientTape() as tape:
                loss = self._loss(x, y, compute=compute)
            return tape.gradient(loss, self.variables)

        step = self.tf.function(gradients)
        return lambda: [g.numpy() for g in step(x, y)]

    def _loss(self, x, y, lengths=None, compute=None):
        arrays = (compute or self._compute)(x, lengths)
        prediction = self.readout(arrays[self._read])  # (B, O) or (B, T, O)
        if lengths is not None and self.data.per_step:  # steps past a sequence's length do not count
            return self._masked_loss(prediction, y, lengths)
        if self.data.loss == "crossentropy":
            per_step = self.tf.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=prediction)
            return self.tf.reduce_mean(per_step)
        return self.tf.reduce_mean(self.tf.square(prediction - y))

    def _masked_loss(self, prediction, y, lengths):
        tf = self.tf
        if self.data.loss == "crossentropy":
            per_step = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=prediction)  # (B, T)
        else:
            per_step = tf.reduce_mean(tf.square(prediction - y), axis=-1)  # (B, T)
        mask = tf.cast(tf.sequence_mask(lengths, tf.shape(y)[1]), per_step.dtype)
        return tf.reduce_sum(per_step * mask) / tf.reduce_sum(mask)

    def _train_step_eager(self, x, y, lengths=None):
        with self.tf.GradientTape() as tape:
            loss = self._loss(x, y, lengths)
        self.optimizer.apply_gradients(zip(tape.gradient(loss, self.variables), self.variables, strict=True))
        return loss

    def run_epoch(self, epoch: int) -> tuple[float, float]:
        """One pass over the training split in a seeded order; returns (train_loss, val_loss)."""
        x, y, size = self.data.x_train, self.data.y_train, self.task.batch_size
        lengths = self.data.lengths_train
        order = np.random.default_rng([self.seed, _SHUFFLE_STREAM, epoch]).permutation(len(x))
        total = 0.0
        for start in range(0, len(x), size):
            batch = order[start : start + size]
            if lengths is None:
                total += float(self._train_step(x[batch], y[batch])) * len(batch)
            else:
                total += float(self._train_step(x[batch], y[batch], lengths[batch])) * len(batch)
        return total / len(x), self.evaluate(self.data.x_val, self.data.y_val, self.data.lengths_val)

    def evaluate(self, x: np.ndarray, y: np.ndarray, lengths: np.ndarray | None = None) -> float:
        """Mean loss over (x, y), in chunks of EVAL_CHUNK sequences."""
        total = 0.0
        for start in range(0, len(x), EVAL_CHUNK):
            chunk = slice(start, start + EVAL_CHUNK)
            if lengths is None:
                total += float(self._eval(x[chunk], y[chunk])) * len(x[chunk])
            else:
                total += float(self._eval(x[chunk], y[chunk], lengths[chunk])) * len(x[chunk])
        return total / len(x)

    def variable_values(self) -> list[np.ndarray]:
        """The trained variables' values (stack and readout), in `self.variables`' order."""
        return [np.array(v.numpy()) for v in self.variables]

    def assign_variables(self, values: list[np.ndarray]) -> None:
        for variable, value in zip(self.variables, values, strict=True):
            variable.assign(value)

    def set_learning_rate(self, rate: float) -> None:
        self.optimizer.learning_rate = rate

    def weights(self) -> dict[str, np.ndarray]:
        """The stack's current weights under `initial_weights`' names (what KerasStack reads back)."""
        return {f"{pre}{v.name}": np.asarray(v.numpy(), np.float32)
                for pre, layer in self.stack.layers.items() for v in layer.weights}

    def readout_weights(self) -> dict[str, np.ndarray]:
        return {"readout/kernel": self.readout.kernel.numpy(), "readout/bias": self.readout.bias.numpy()}

    def checkpoint(self, epochs_done: int, extra: dict[str, np.ndarray], scalars: dict) -> Checkpoint:
        """Everything later epochs depend on: weights, readout, the optimizer's variables (see
        checkpoints.py), and `extra` arrays (the controls'); the batch order needs nothing more, being
        drawn from (seed, epoch)."""
        arrays = {f"stack/{name}": w for name, w in self.weights().items()}
        arrays.update(extra)
        arrays.update(self.readout_weights())  # already named readout/...
        for k, variable in enumerate(self.optimizer.variables):
            arrays[f"optimizer/{k:04d}/{variable.name}"] = np.asarray(variable.numpy())
        return Checkpoint(epochs_done, arrays, scalars)

    def restore(self, checkpoint: Checkpoint) -> None:
        """Assigns a checkpoint's arrays to the stack, readout and optimizer, after checking they fit.

        Raises:
            ValueError: the checkpoint holds other variables (names or shapes) than this trainer.
        """
        targets = {f"stack/{pre}{v.name}": v
                   for pre, layer in self.stack.layers.items() for v in layer.weights}
        targets.update({"readout/kernel": self.readout.kernel, "readout/bias": self.readout.bias})
        targets.update({f"optimizer/{k:04d}/{v.name}": v for k, v in enumerate(self.optimizer.variables)})
        theirs = {n: a.shape for n, a in checkpoint.arrays.items() if n.startswith(_TRAINER_PARTS)}
        ours = {n: tuple(v.shape) for n, v in targets.items()}
        if theirs != ours:
            differ = sorted(set(theirs.items()) ^ set(ours.items()))[:4]
            raise ValueError(f"the checkpoint's variables are not this training's: {differ}")
        for name, variable in targets.items():
            variable.assign(checkpoint.arrays[name])


def train(
    task,
    spec: ModelSpec,
    weights: dict[str, np.ndarray],
    seed: int,
    on_epoch: Callable[[int, float, float, float], bool | None] | None = None,
    data: tasks.TaskData | None = None,
    checkpointing: Checkpointing | None = None,
) -> TrainResult:
    """Trains the stack on `task` for `task.epochs` epochs, or fewer when early stopping ends it.

    Args:
        task: the validated `task` section (not `none`).
        spec: the validated model.
        weights: keras-layout starting weights (fresh from the seed, or loaded) for the task's inputs.
        seed: the run's seed.
        on_epoch: called after each epoch as on_epoch(epoch, train_loss, val_loss, seconds), epochs
            counted from 0; seconds include the first epoch's tracing. Returning True stops training
            after that epoch (a search's pruned trial): the result holds the epochs that ran.
        data: `task=file`'s data (`file_task.load_file_task`); None: the synthetic task's, drawn.
        checkpointing: where to start from and where checkpoints go; None: from the start, none taken.

    Returns:
        A `TrainResult`; its weights replace the run's weights for the forward pass.

    Example:
        >>> result = train(compose("task=adding").task, spec, initial_weights(spec, 2, 0), seed=0)
        >>> result.val_loss[-1] < result.baseline_loss
        True
    """
    started = time.perf_counter()
    trainer = Trainer(task, spec, weights, seed, data)
    controls = EpochControls(controls_of(task), task.learning_rate, task.epochs)
    checkpointing = checkpointing or Checkpointing()
    train_loss, val_loss, epoch_s = [], [], []
    first = 0
    if checkpointing.start is not None:  # the histories so far come with it, so the run shows them all
        start = checkpointing.start
        trainer.restore(start)
        controls.restore(start.arrays, start.scalars)
        first = task.epochs if controls.stopped else start.epochs_done
        histories = ("train_loss", "val_loss", "epoch_s")
        train_loss, val_loss, epoch_s = (list(start.scalars[k]) for k in histories)
    for epoch in range(first, task.epochs):
        controls.before_epoch(epoch, trainer.set_learning_rate)
        epoch_start = time.perf_counter()
        losses = trainer.run_epoch(epoch)
        seconds = time.perf_counter() - epoch_start
        train_loss.append(losses[0])
        val_loss.append(losses[1])
        epoch_s.append(seconds)
        if on_epoch is not None and on_epoch(epoch, losses[0], losses[1], seconds) is True:
            break  # a pruned trial: nothing to resume, so no checkpoint either
        stop = controls.stop_after(epoch, losses[1], trainer.variable_values)
        done = epoch + 1
        due = done % checkpointing.every == 0 or done == task.epochs or stop
        if checkpointing.save is not None and due:
            histories = {"train_loss": list(train_loss), "val_loss": list(val_loss), "epoch_s": list(epoch_s)}
            checkpointing.save(trainer.checkpoint(done, *controls.state(histories)))
        if stop:
            break
    controls.finish(trainer.assign_variables)
    if data is None:
        held_x, held_y = tasks.held_out(task, seed)
    else:  # the user's data: the first sequences of its validation split
        held_x, held_y = data.x_val[: tasks.HELD_OUT], data.y_val[: tasks.HELD_OUT]
    stopping = controls.stopping
    return TrainResult(train_loss, val_loss, trainer.data.baseline_loss, time.perf_counter() - started,
                       trainer.weights(), trainer.readout_weights(), held_x, held_y, trainer.data.loss,
                       epoch_s, None if stopping is None else stopping.stopped_epoch,
                       None if stopping is None else stopping.best_epoch, controls.rates,
                       trainer.data.datasets, trainer.engine, trainer.engine_why)
