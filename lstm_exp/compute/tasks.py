"""The standard synthetic tasks as NumPy data sets drawn from the run's seed.

Every task gives (x, y) for a training and a validation split, and the loss of the task's trivial
predictor on the validation split (`baseline_loss`), which a trained model has to beat:

- `adding` (Hochreiter & Schmidhuber 1997, in the form of Le et al. 2015): x (N, T, 2) holds values
  uniform in [0, 1] and a marker channel with exactly two 1s, one in each half of the sequence;
  y (N, 1) is the sum of the two marked values, read out from the final state. MSE. Baseline: always
  answering 1.0, whose MSE is the variance of the sum, ~1/6.
- `copy` (Arjovsky, Shah & Bengio 2016): S = copy_length symbols of K = `symbols`, then blanks, a
  delimiter at step T - S - 1 and S blanks (T = 2S + delay); y (N, T) is blank everywhere except the
  last S steps, which repeat the symbols. x is one-hot over K + 2 channels (symbols, blank,
  delimiter); y's classes are the K symbols and blank (K). Cross-entropy per step. Baseline: the
  memoryless answer (blank for T - S steps, then uniform over the symbols): S log(K) / T, the paper's
  S log(8) / (T' + 2S) with its delay T' = T - 2S.
- `flipflop` (3-bit flip-flop, Sussillo & Barak 2013): x (N, T, 3) holds sparse ±1 pulses; y is, per
  channel, the sign of its last pulse so far. Every channel gets a pulse at step 0, so that y is ±1
  at every step (no undefined "before any pulse" state). MSE per step. Baseline: answering 0, MSE 1.
- `sine`: x (N, T, 1) = sin(2π f t + φ) with f uniform in [0.01, 0.1] cycles per step and φ uniform
  in [0, 2π); y (N, T, 1) is the next value. MSE per step. Baseline: persistence (repeat the current
  value), MSE = mean (x_{t+1} - x_t)^2.

What each task feeds the stack and asks back (widths, loss, targets per step or per sequence) is
`config/task_kinds.py`'s table; this module draws the data and the baseline of each.
"""

from dataclasses import dataclass

import numpy as np

from lstm_exp.config.task_kinds import TASK_KINDS

TASKS = tuple(TASK_KINDS)
SINE_FREQUENCIES = (0.01, 0.1)  # cycles per step: from a few cycles per sequence to ten steps per cycle
HELD_OUT = 8  # sequences the runner passes forward and analyses after training
_SPLITS = {"train": 0, "val": 1, "held_out": 2}  # one NumPy stream per split: sizes never shift others


@dataclass
class TaskData:
    """One task's data. `y` is float32 (N, 1) or (N, T, O) for MSE, int32 (N, T) for cross-entropy."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    baseline_loss: float
    loss: str  # mse | crossentropy
    per_step: bool  # a target at every step; False: one target per sequence, from the final state
    outputs: int  # the readout's size: values for MSE, classes for cross-entropy
    lengths_train: np.ndarray | None = None  # (N,) valid steps per sequence (task=file only)
    lengths_val: np.ndarray | None = None
    datasets: tuple = ()  # task=file: the two splits' `DatasetInfo`s, logged as MLflow datasets


def features(task) -> int:
    """F, the input size a task feeds the first layer (the memory estimate's, so they cannot part)."""
    return TASK_KINDS[task.name].inputs(task)


def outputs(task) -> int:
    """Size of the readout: values for MSE tasks, classes (symbols and blank) for copy."""
    return TASK_KINDS[task.name].outputs(task)


def _adding(rng, n, task):
    steps = task.timesteps
    values = rng.uniform(0.0, 1.0, (n, steps))
    half = steps // 2
    first = rng.integers(0, half, n)
    second = rng.integers(half, steps, n)
    marks = np.zeros((n, steps))
    marks[np.arange(n), first] = 1.0
    marks[np.arange(n), second] = 1.0
    y = (values * marks).sum(axis=1, keepdims=True)
    return np.stack([values, marks], axis=-1), y


def _copy(rng, n, task):
    steps, length, symbols = task.timesteps, task.copy_length, task.symbols
    blank, delimiter = symbols, symbols + 1
    codes = np.full((n, steps), blank)
    data = rng.integers(0, symbols, (n, length))
    codes[:, :length] = data
    codes[:, steps - length - 1] = delimiter
    y = np.full((n, steps), blank, dtype=np.int32)
    y[:, steps - length :] = data
    return np.eye(symbols + 2)[codes], y


def _flipflop(rng, n, task):
    steps = task.timesteps
    signs = rng.choice([-1.0, 1.0], (n, steps, 3))
    pulses = rng.uniform(size=(n, steps, 3)) < task.pulse_prob
    pulses[:, 0] = True
    x = np.where(pulses, signs, 0.0)
    # The index of each step's latest pulse, carried forward: y is the pulse's sign there.
    last = np.maximum.accumulate(np.where(pulses, np.arange(steps)[None, :, None], 0), axis=1)
    y = np.take_along_axis(x, last, axis=1)
    return x, y


def _sine(rng, n, task):
    steps = task.timesteps
    freq = rng.uniform(*SINE_FREQUENCIES, (n, 1))
    phase = rng.uniform(0.0, 2 * np.pi, (n, 1))
    wave = np.sin(2 * np.pi * freq * np.arange(steps + 1)[None, :] + phase)[..., None]  # (N, T + 1, 1)
    return wave[:, :-1], wave[:, 1:]


# name: (draw (rng, n, task) -> x, y; the trivial predictor's loss (task, x_val, y_val) -> float)
_DRAWS = {
    "adding": (_adding, lambda task, x, y: float(np.mean((y.astype(np.float64) - 1.0) ** 2))),
    "copy": (_copy, lambda task, x, y: task.copy_length * float(np.log(task.symbols)) / task.timesteps),
    "flipflop": (_flipflop, lambda task, x, y: float(np.mean(y.astype(np.float64) ** 2))),
    "sine": (_sine, lambda task, x, y: float(np.mean((y.astype(np.float64) - x) ** 2))),
}


def _split(task, seed: int, split: str, n: int):
    rng = np.random.default_rng([seed, _SPLITS[split]])
    x, y = _DRAWS[task.name][0](rng, n, task)
    return x.astype(np.float32), (y if y.dtype == np.int32 else y.astype(np.float32))


def baseline_loss(task, x_val: np.ndarray, y_val: np.ndarray) -> float:
    """The trivial predictor's loss on the validation split (see the module docstring)."""
    return _DRAWS[task.name][1](task, x_val, y_val)


def make_task(task, seed: int) -> TaskData:
    """Draws both splits of a validated task config.

    Example:
        >>> data = make_task(OmegaConf.create({"name": "adding", "timesteps": 20, ...}), seed=0)
        >>> data.x_train.shape, data.y_train.shape, round(data.baseline_loss, 2)
        ((2000, 20, 2), (2000, 1), 0.17)
    """
    x_train, y_train = _split(task, seed, "train", task.train_size)
    x_val, y_val = _split(task, seed, "val", task.val_size)
    kind = TASK_KINDS[task.name]
    return TaskData(x_train, y_train, x_val, y_val, baseline_loss(task, x_val, y_val), kind.loss,
                    kind.per_step, kind.outputs(task))


def held_out(task, seed: int, n: int = HELD_OUT) -> tuple[np.ndarray, np.ndarray]:
    """A few sequences from neither split, for the forward pass and analyses after training."""
    return _split(task, seed, "held_out", n)
