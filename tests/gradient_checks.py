"""What the native ops' gradient and training tests share (LSTM: test_native_training.py, GRU:
test_native_gru.py): the relative error they bound, central finite differences of a float64 loss,
and the tiny task two epochs of Adam train on."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from omegaconf import OmegaConf

from lstm_exp.config.task_schema import TaskConfig

STEP = 1e-6  # central differences of a float64 loss: their own error is ~1e-9 at this step


def relative(got: np.ndarray, want: np.ndarray) -> float:
    """The largest difference over the largest magnitude of `want`."""
    return float(np.abs(got - want).max() / np.abs(want).max())


def central_differences(loss: Callable[[list[np.ndarray]], float],
                        args: list[np.ndarray]) -> list[np.ndarray]:
    """d loss / d arg for every element of every float64 array in `args` (changed in place, restored)."""
    numeric = []
    for arg in args:
        grad = np.zeros_like(arg)
        for index in np.ndindex(arg.shape):
            saved = arg[index]
            arg[index] = saved + STEP
            up = loss(args)
            arg[index] = saved - STEP
            down = loss(args)
            arg[index] = saved
            grad[index] = (up - down) / (2 * STEP)
        numeric.append(grad)
    return numeric


def tiny_task(epochs: int = 2):
    """`adding`, 6 steps, 40 training and 16 validation sequences, batches of 16."""
    return OmegaConf.structured(TaskConfig(name="adding", timesteps=6, train_size=40, val_size=16,
                                           epochs=epochs, batch_size=16))
