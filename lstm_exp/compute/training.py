"""Training the configured stack on a synthetic task (`task=adding|copy|flipflop|sine`) or a file
(`task=file`, read and split by `file_task.py`): `train` runs a `trainer.Trainer`'s epochs.

Between epochs, `training_controls.EpochControls` sets the epoch's learning rate and decides early
stopping; clipping and weight decay are the optimizer's (`training_controls.make_optimizer`).

With `Checkpointing`, `train` hands a `Checkpoint` (checkpoints.py) to its `save` every `every` epochs
and after the last (an early stop included), and a training given a `start` checkpoint goes on from
there to the same weights, bit for bit, as one that was never interrupted: the checkpoint carries early
stopping's state too (`EpochControls.state`).
"""

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from lstm_exp.compute import tasks
from lstm_exp.compute.checkpoints import Checkpoint
from lstm_exp.compute.trainer import Trainer
from lstm_exp.compute.training_controls import EpochControls, controls_of
from lstm_exp.config.specs import ModelSpec


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
