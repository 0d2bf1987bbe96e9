"""The trainer: one task's data, the configured stack topped by a Dense readout, the optimizer, and
the compiled train and eval steps (`training.train` loops its epochs).

The stack is the forward path's own `KerasStack` (every cell and option it supports; its variables
are what trains), computed by the engine `training_engine.py` resolves (stock Keras, or the native op
with its backward through time); the readout reads every step for copy, flipflop, sine and per-step
files, the last layer's final state otherwise. A fixed batch order from a seeded NumPy permutation
per epoch, NumPy-drawn readout weights and TensorFlow's op determinism make the trained weights a
function of (config, seed): bit for bit on one machine.

    trainer = Trainer(task, spec, weights, seed)     # data, stack, readout, optimizer
    trainer.run_epoch(0) -> (train_loss, val_loss)    # what `train` loops over; bench_train times it
    trainer.checkpoint(...) / trainer.restore(...)    # everything later epochs depend on
"""

import math

import numpy as np

from lstm_exp.compute import tasks
from lstm_exp.compute.checkpoints import Checkpoint
from lstm_exp.compute.tf_runtime import load_tensorflow
from lstm_exp.compute.training_controls import controls_of, make_optimizer
from lstm_exp.compute.training_engine import training_engine
from lstm_exp.config import names
from lstm_exp.config.specs import ModelSpec
from lstm_exp.config.task_memory import EVAL_CHUNK  # validation sequences per forward call

_READOUT_STREAM = 4  # NumPy stream ids beside tasks' splits (0-2), so that no two draws share one
_SHUFFLE_STREAM = 5
_TRAINER_PARTS = ("stack/", "readout/", "optimizer/")  # a checkpoint's arrays the Trainer restores

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
