"""Validation of the `task` section against the model it would train (no TensorFlow)."""

import math

from lstm_exp.config.validate import ModelSpec
from lstm_exp.errors import ConfigError

TASK_NAMES = ("none", "adding", "copy", "flipflop", "sine")
# Tasks whose targets at step t may depend only on steps <= t: a backward direction reads the future,
# so a bidirectional model would be answering from the answer (sine: x_{t+1} is its input at t + 1).
CAUSAL_TASKS = ("copy", "flipflop", "sine")
MAX_TIMESTEPS = 10_000
MAX_SEQUENCES = 1_000_000
MAX_EPOCHS = 10_000
MAX_SYMBOLS = 1_000
MAX_DATA_FLOATS = 2**28  # 1 GiB of float32 inputs over both splits: more belongs in a data pipeline


def _int(key: str, value: object, limit: int, low: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= limit:
        raise ConfigError(key, value, f"an integer from {low} to {limit}")
    return value


def validate_task(task, model_spec: ModelSpec) -> None:
    """Checks `task.*` and that the model can learn the task without seeing its targets.

    Args:
        task: the composed `task` section (`TaskConfig`).
        model_spec: the validated model.

    Raises:
        ConfigError: naming the first key at fault.

    Example:
        >>> validate_task(compose("task=sine", "model.bidirectional=true").task, spec)
        ConfigError: model.bidirectional must be false for task=sine (...)
    """
    if task.name not in TASK_NAMES:
        raise ConfigError("task.name", task.name, "one of " + ", ".join(TASK_NAMES))
    if task.name == "none":
        return
    steps = _int("task.timesteps", task.timesteps, MAX_TIMESTEPS, low=2)  # adding: one mark per half
    train = _int("task.train_size", task.train_size, MAX_SEQUENCES)
    val = _int("task.val_size", task.val_size, MAX_SEQUENCES)
    _int("task.epochs", task.epochs, MAX_EPOCHS)
    _int("task.batch_size", task.batch_size, train)
    rate = task.learning_rate
    if isinstance(rate, bool) or not isinstance(rate, int | float) or not math.isfinite(rate) or not (
        0 < rate <= 1
    ):
        raise ConfigError("task.learning_rate", rate, "a number in (0, 1]")
    width = 3
    if task.name == "copy":
        symbols = _int("task.symbols", task.symbols, MAX_SYMBOLS, low=2)
        length = _int("task.copy_length", task.copy_length, MAX_TIMESTEPS)
        if 2 * length + 1 > steps:
            raise ConfigError("task.timesteps", steps,
                              f"at least 2 * task.copy_length + 1 = {2 * length + 1} (a delay of >= 1 step)")
        width = symbols + 2
    if task.name == "flipflop" and not (
        isinstance(task.pulse_prob, int | float) and 0 < task.pulse_prob <= 1
    ):
        raise ConfigError("task.pulse_prob", task.pulse_prob, "a probability in (0, 1]")
    if (train + val) * steps * width > MAX_DATA_FLOATS:
        key, size = ("task.val_size", val) if val > train else ("task.train_size", train)  # the larger one
        raise ConfigError(key, size,
                          f"a size whose inputs fit in {MAX_DATA_FLOATS} floats: (train_size + val_size) "
                          f"* timesteps * {width} features is {(train + val) * steps * width}")
    if model_spec.bidirectional and task.name in CAUSAL_TASKS:
        raise ConfigError("model.bidirectional", True,
                          f"false for task={task.name}: its target at step t depends only on steps <= t, "
                          "and a backward direction would read the answer from later inputs")
