"""Validation of the `task` section against the model it would train (no TensorFlow)."""

import math

from lstm_exp.config.controls_validate import validate_controls, validate_file_keys
from lstm_exp.config.specs import ModelSpec, TaskSpec
from lstm_exp.config.task_kinds import FILE_TASK, MAX_TIMESTEPS, NO_TASK, TASK_KINDS, TASK_NAMES, whole_number
from lstm_exp.errors import ConfigError

MAX_SEQUENCES = 1_000_000
MAX_EPOCHS = 10_000
MAX_DATA_FLOATS = 2**28  # 1 GiB of float32 inputs over both splits: more belongs in a data pipeline
MIN_DATA_WIDTH = 3  # inputs per step the data-size bound counts at least (flipflop's), for every task


def validate_task(task, model_spec: ModelSpec) -> TaskSpec | None:
    """Checks `task.*` and that the model can learn the task without seeing its targets.

    Args:
        task: the composed `task` section (`TaskConfig`).
        model_spec: the validated model.

    Returns:
        The task as a `TaskSpec`; None for `task=none` (no training).

    Raises:
        ConfigError: naming the first key at fault.

    Example:
        >>> validate_task(compose("task=sine", "model.bidirectional=true").task, spec)
        ConfigError: model.bidirectional must be false for task=sine (...)
    """
    if task.name not in TASK_NAMES:
        raise ConfigError("task.name", task.name, "one of " + ", ".join(TASK_NAMES))
    if task.name == NO_TASK:
        return None
    if task.name == FILE_TASK:  # the sizes are the file's: checked as it is read
        whole_number("task.epochs", task.epochs, MAX_EPOCHS)
        whole_number("task.batch_size", task.batch_size, MAX_SEQUENCES)
        path, fraction, classes = validate_file_keys(task)
        return TaskSpec(task.name, 0, 0, 0, task.epochs, task.batch_size, _rate(task.learning_rate), 0, 0,
                        0.0, path, fraction, classes, validate_controls(task))
    kind = TASK_KINDS[task.name]
    steps = whole_number("task.timesteps", task.timesteps, MAX_TIMESTEPS, low=2)  # adding: a mark per half
    train = whole_number("task.train_size", task.train_size, MAX_SEQUENCES)
    val = whole_number("task.val_size", task.val_size, MAX_SEQUENCES)
    whole_number("task.epochs", task.epochs, MAX_EPOCHS)
    whole_number("task.batch_size", task.batch_size, train)
    rate = _rate(task.learning_rate)
    controls = validate_controls(task)
    _, fraction, _ = validate_file_keys(task)
    kind.check(task)
    every = whole_number("task.checkpoint_every", task.checkpoint_every, MAX_EPOCHS)
    resume_from = task.resume_from
    if resume_from is not None and (not isinstance(resume_from, str) or not resume_from.strip()
                                    or len(resume_from.split()) != 1):
        raise ConfigError("task.resume_from", resume_from, "null or the id of an MLflow run (one word)")
    width = max(MIN_DATA_WIDTH, kind.inputs(task))
    if (train + val) * steps * width > MAX_DATA_FLOATS:
        key, size = ("task.val_size", val) if val > train else ("task.train_size", train)  # the larger one
        raise ConfigError(key, size,
                          f"a size whose inputs fit in {MAX_DATA_FLOATS} floats: (train_size + val_size) "
                          f"* timesteps * {width} features is {(train + val) * steps * width}")
    if model_spec.bidirectional and kind.causal:
        raise ConfigError("model.bidirectional", True,
                          f"false for task={task.name}: its target at step t depends only on steps <= t, "
                          "and a backward direction would read the answer from later inputs")
    return TaskSpec(task.name, steps, train, val, task.epochs, task.batch_size, rate,
                    task.copy_length, task.symbols, float(task.pulse_prob), None, fraction, None, controls,
                    every, resume_from)


def _rate(rate: object) -> float:
    if isinstance(rate, bool) or not isinstance(rate, int | float) or not math.isfinite(rate) or not (
        0 < rate <= 1
    ):
        raise ConfigError("task.learning_rate", rate, "a number in (0, 1]")
    return float(rate)
