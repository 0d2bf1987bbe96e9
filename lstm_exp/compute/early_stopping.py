"""Early stopping on `val_loss`, decided as `keras.callbacks.EarlyStopping(monitor="val_loss",
mode="min", patience, min_delta, restore_best_weights)` decides it inside `model.fit()`.

Our loop does not use `fit()`, so Keras' callback cannot run; this is its rule, step for step
(Keras 3's `on_epoch_end`): after each epoch the wait grows by one; a loss below the best by more
than `min_delta` (`loss + min_delta < best`, NaN never) becomes the best and resets the wait; training
stops after the epoch at which the wait reaches `patience` (never after the first epoch). With
`restore_best_weights` the best epoch's weights come back at the end, stopped or not, as in Keras'
`on_train_end`. `tests/test_early_stopping.py` drives both with the same loss histories.

All of its bookkeeping is in one object with a plain-dict form (`to_dict` / `from_dict`), so that a
checkpoint can carry it and a resumed training stops where the uninterrupted one would.
"""

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np


@dataclass
class EarlyStopping:
    """The rule's settings and its state after the epochs seen so far.

    Args:
        patience: epochs without improvement before stopping (>= 1; `task.patience=0` builds none).
        min_delta: how far below the best a loss must be to count as an improvement.
        restore_best_weights: keep the best epoch's weights to restore at the end.
    """

    patience: int
    min_delta: float = 0.0
    restore_best_weights: bool = False
    best: float | None = None  # the best val_loss so far; None before the first epoch
    best_epoch: int = 0
    wait: int = 0  # epochs since the last improvement
    stopped_epoch: int | None = None  # the epoch after which training stopped; None: not stopped
    best_weights: list[np.ndarray] | None = None  # the trained variables at best_epoch

    def update(self, epoch: int, val_loss: float, weights: Callable[[], list[np.ndarray]]) -> bool:
        """Takes one epoch's val_loss; True when training should stop after this epoch.

        Args:
            epoch: the epoch just trained, from 0.
            val_loss: its validation loss.
            weights: gives the trained variables' current values (called only when they are kept).
        """
        if self.restore_best_weights and self.best_weights is None:
            self.best_weights, self.best_epoch = weights(), epoch  # as Keras: the first weights seen
        self.wait += 1
        if self.best is None or val_loss + self.min_delta < self.best:
            self.best, self.best_epoch, self.wait = val_loss, epoch, 0
            if self.restore_best_weights:
                self.best_weights = weights()
            return False
        if self.wait >= self.patience and epoch > 0:
            self.stopped_epoch = epoch
            return True
        return False

    def to_dict(self) -> dict:
        """The settings and state as plain values (the weights as a list of arrays, or None)."""
        return {"patience": self.patience, "min_delta": self.min_delta,
                "restore_best_weights": self.restore_best_weights, "best": self.best,
                "best_epoch": self.best_epoch, "wait": self.wait, "stopped_epoch": self.stopped_epoch,
                "best_weights": (None if self.best_weights is None
                                 else [np.array(w) for w in self.best_weights])}

    @classmethod
    def from_dict(cls, state: dict) -> "EarlyStopping":
        """The object `to_dict` described."""
        weights = state["best_weights"]
        return cls(int(state["patience"]), float(state["min_delta"]), bool(state["restore_best_weights"]),
                   None if state["best"] is None else float(state["best"]), int(state["best_epoch"]),
                   int(state["wait"]),
                   None if state["stopped_epoch"] is None else int(state["stopped_epoch"]),
                   None if weights is None else [np.array(w) for w in weights])
