"""The training controls around `trainer.Trainer`'s epochs: the optimizer's clipping and weight decay,
the learning rate of each epoch, and early stopping.

Learning rate of epoch e (from 0) of E, for `task.learning_rate` r, W = `task.warmup_epochs`:

    e < W (warm-up)   r * (e + 1) / (W + 1)                  linear, reaching r at the first epoch after it
    constant          r
    cosine            r * (1 + cos(pi * (e - W) / (E - W))) / 2    Keras' CosineDecay(r, E - W), per epoch
    step              r * step_factor ** ((e - W) // step_size)   Keras' ExponentialDecay(staircase=True)

The rate is set once per epoch, before its first batch. Clipping is Keras' own (`clipnorm`: each
gradient's norm; `global_clipnorm`: all gradients' joint norm). Weight decay is Keras 3 Adam's
`weight_decay`: decoupled (Loshchilov & Hutter's AdamW), each variable shrunk by `lr * weight_decay`
times itself before the Adam step, biases included (Keras excludes none by default).

With every control at its default, the optimizer is the `Adam(learning_rate=r)` it always was and no
rate is ever set: existing trainings stay the same bit for bit.
"""

import math
from collections.abc import Callable

import numpy as np

from lstm_exp.compute.early_stopping import EarlyStopping
from lstm_exp.config.controls_validate import validate_controls
from lstm_exp.config.specs import ControlsSpec, TaskSpec

_BEST_WEIGHTS = "early_stopping/best/"  # a checkpoint's arrays of early stopping's best weights


def controls_of(task) -> ControlsSpec:
    """The controls of a parsed `TaskSpec`, or of a `task` section given as it was composed (the
    notebook API and the benchmarks train from `TaskConfig`s): checked here, as `parse` would."""
    return task.controls if isinstance(task, TaskSpec) else validate_controls(task)


def make_optimizer(keras, learning_rate: float, controls: ControlsSpec):
    """Keras' Adam with the configured clipping and weight decay (only those that are set)."""
    extra = {}
    if controls.clipnorm is not None:
        extra["clipnorm"] = controls.clipnorm
    if controls.global_clipnorm is not None:
        extra["global_clipnorm"] = controls.global_clipnorm
    if controls.weight_decay > 0:
        extra["weight_decay"] = controls.weight_decay
    return keras.optimizers.Adam(learning_rate=learning_rate, **extra)


def learning_rate(controls: ControlsSpec, base: float, epoch: int, epochs: int) -> float:
    """The learning rate of `epoch` (see the module docstring's table)."""
    warmup = controls.warmup_epochs
    if epoch < warmup:
        return base * (epoch + 1) / (warmup + 1)
    after = epoch - warmup
    if controls.schedule == "cosine":
        return base * 0.5 * (1.0 + math.cos(math.pi * after / max(1, epochs - warmup)))
    if controls.schedule == "step":
        return base * controls.step_factor ** (after // controls.step_size)
    return base


class EpochControls:
    """What happens between epochs: the rate set before each, early stopping after each.

    Args:
        controls: the validated controls.
        base_rate: `task.learning_rate`.
        epochs: `task.epochs`, the most epochs.
    """

    def __init__(self, controls: ControlsSpec, base_rate: float, epochs: int):
        self.controls, self.base_rate, self.epochs = controls, base_rate, epochs
        self.rates: list[float] = []  # the rate of each epoch trained, when scheduled
        self.stopping = (EarlyStopping(controls.patience, controls.min_delta, controls.restore_best_weights)
                         if controls.patience > 0 else None)

    def before_epoch(self, epoch: int, set_rate: Callable[[float], None]) -> None:
        if self.controls.scheduled:
            rate = learning_rate(self.controls, self.base_rate, epoch, self.epochs)
            set_rate(rate)
            self.rates.append(rate)

    def stop_after(self, epoch: int, val_loss: float, weights: Callable[[], list[np.ndarray]]) -> bool:
        """True when early stopping ends training after `epoch`."""
        return self.stopping is not None and self.stopping.update(epoch, val_loss, weights)

    @property
    def stopped(self) -> bool:
        """Early stopping has ended training (a restored checkpoint can say so)."""
        return self.stopping is not None and self.stopping.stopped_epoch is not None

    def state(self, scalars: dict) -> tuple[dict[str, np.ndarray], dict]:
        """(arrays, scalars) for a checkpoint: `scalars` plus the rates so far and early stopping's
        bookkeeping, its best weights as `early_stopping/NNNN` arrays."""
        scalars = {**scalars, "learning_rates": list(self.rates)}
        if self.stopping is None:
            return {}, scalars
        state = self.stopping.to_dict()
        best = state.pop("best_weights")
        arrays = {f"{_BEST_WEIGHTS}{k:04d}": w for k, w in enumerate(best or [])}
        return arrays, {**scalars, "early_stopping": state, "early_stopping_weights": best is not None}

    def restore(self, arrays: dict[str, np.ndarray], scalars: dict) -> None:
        """Takes back what `state` saved (a checkpoint without it leaves the fresh state)."""
        self.rates = [float(r) for r in scalars.get("learning_rates", [])]
        if self.stopping is not None and "early_stopping" in scalars:
            best = sorted(n for n in arrays if n.startswith(_BEST_WEIGHTS))
            weights = [arrays[n] for n in best] if scalars.get("early_stopping_weights") else None
            self.stopping = EarlyStopping.from_dict({**scalars["early_stopping"], "best_weights": weights})

    def finish(self, assign: Callable[[list[np.ndarray]], None]) -> None:
        """Restores the best epoch's weights, when asked to (stopped or not, as Keras does)."""
        if self.stopping is not None and self.stopping.best_weights is not None:
            assign(self.stopping.best_weights)
