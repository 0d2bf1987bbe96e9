"""Validation of the training controls (`task.patience`, clipping, the schedule, weight decay) and of
`task=file`'s own keys; the file itself is checked as it is read (`compute/file_task.py`).
"""

import math

from lstm_exp.config.specs import ControlsSpec
from lstm_exp.config.task_kinds import whole_number
from lstm_exp.config.validate import FLOAT32_MAX
from lstm_exp.errors import ConfigError

SCHEDULES = ("constant", "cosine", "step")
MAX_EPOCHS = 10_000
MAX_CLASSES = 100_000  # a readout of more classes belongs to a sampled softmax, not to this loop


def _number(key: str, value: object, low: float, high: float, *, low_open: bool = False,
            high_open: bool = False) -> float:
    """`value` as a float if it is a finite real number in the interval, else a ConfigError."""
    ok = not isinstance(value, bool) and isinstance(value, int | float) and math.isfinite(value)
    ok = ok and (low < value if low_open else low <= value) and (value < high if high_open else value <= high)
    if not ok:
        left, right = "(" if low_open else "[", ")" if high_open else "]"
        raise ConfigError(key, value, f"a number in {left}{low:g}, {high:g}{right}")
    return float(value)


def _clip(key: str, value: object) -> float | None:
    if value is None:
        return None
    return _number(key, value, 0.0, FLOAT32_MAX, low_open=True)


def validate_controls(task) -> ControlsSpec:
    """Checks the training controls of the `task` section (epochs already valid).

    Raises:
        ConfigError: naming the first key at fault.

    Example:
        >>> validate_controls(compose("task=sine", "task.schedule=cosine").task).schedule
        'cosine'
    """
    patience = whole_number("task.patience", task.patience, MAX_EPOCHS, low=0)
    min_delta = _number("task.min_delta", task.min_delta, 0.0, FLOAT32_MAX)
    clipnorm = _clip("task.clipnorm", task.clipnorm)
    global_clipnorm = _clip("task.global_clipnorm", task.global_clipnorm)
    if clipnorm is not None and global_clipnorm is not None:
        raise ConfigError("task.global_clipnorm", task.global_clipnorm,
                          f"null while task.clipnorm={task.clipnorm} is set (one way of clipping at a time)")
    if task.schedule not in SCHEDULES:
        raise ConfigError("task.schedule", task.schedule, "one of " + ", ".join(SCHEDULES))
    warmup = whole_number("task.warmup_epochs", task.warmup_epochs, task.epochs, low=0)
    step_size = whole_number("task.step_size", task.step_size, MAX_EPOCHS)
    step_factor = _number("task.step_factor", task.step_factor, 0.0, 1.0, low_open=True)
    weight_decay = _number("task.weight_decay", task.weight_decay, 0.0, 1.0)
    return ControlsSpec(patience, min_delta, bool(task.restore_best_weights), clipnorm, global_clipnorm,
                        task.schedule, warmup, step_size, step_factor, weight_decay)


def validate_file_keys(task) -> tuple[str | None, float, int | None]:
    """`task.path`, `task.val_fraction` and `task.classes`: (path, val_fraction, classes).

    `task.path` must name a file for `task=file`; it and `task.classes` must be null for the synthetic
    tasks (they would be silently unused there).
    """
    path = task.path
    if task.name == "file":
        if not isinstance(path, str) or not path.strip():
            raise ConfigError("task.path", path, "an .npz file with x (N, T, F) and y for task=file")
    elif path is not None:
        raise ConfigError("task.path", path, f"null for task={task.name} (only task=file reads a file)")
    fraction = _number("task.val_fraction", task.val_fraction, 0.0, 1.0, low_open=True, high_open=True)
    classes = task.classes
    if classes is not None and task.name != "file":
        raise ConfigError("task.classes", classes, f"null for task={task.name} (task=file alone reads it)")
    if classes is not None:
        classes = whole_number("task.classes", classes, MAX_CLASSES, low=2)
    return path, fraction, classes
