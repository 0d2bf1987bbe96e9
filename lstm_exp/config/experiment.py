"""The edge of the job's path: a composed config parsed once into a typed, frozen `Experiment`.

Every `ConfigError` that needs no file comes from `parse`: each section's own checks
(`validate.py`, `task_validate.py`), then the rules that join sections (a task and the input's
lengths, the memory a run will take). Below it, functions take the spec they need; the `DictConfig`
itself lives on only where the resolved tree is the value (the config hash, `config.yaml`, params).
"""

from omegaconf import DictConfig

from lstm_exp.config import names
from lstm_exp.config.analysis import validate_analysis
from lstm_exp.config.memory import TF_BASE_BYTES
from lstm_exp.config.specs import Experiment, ModelSpec, TrackingSpec
from lstm_exp.config.task_memory import check_training_memory, training_bytes
from lstm_exp.config.task_validate import validate_task
from lstm_exp.config.validate import (
    estimate_bytes,
    expected_shapes,
    validate_input,
    validate_model,
    validate_run,
    validate_tracking,
    validate_weights,
)
from lstm_exp.errors import ConfigError

MAX_SEED = 2**32 - 1  # NumPy's and Keras's seed range


def parse(cfg: DictConfig) -> Experiment:
    """Validates a composed config and returns it as an `Experiment`.

    Raises:
        ConfigError: naming the first key at fault, its value, and what is allowed.

    Example:
        >>> parse(compose("model=stacked")).model.units
        (4, 5)
    """
    seed = cfg.seed
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= MAX_SEED:
        raise ConfigError("seed", seed, "an integer from 0 to 2**32-1 (NumPy's and Keras's seed range)")
    model = validate_model(cfg.model)
    weights = validate_weights(cfg.model.weights)
    inp = validate_input(cfg.input)
    run = validate_run(cfg.run)
    tracking = validate_tracking(cfg.tracking)
    task = validate_task(cfg.task, model)
    if task is not None:  # refuse before any data is drawn (a file's sizes are checked as it is read)
        if task.path is None:
            check_training_memory(task, model, run.max_memory_gb)
        if inp.lengths is not None:
            raise ConfigError("input.lengths", list(inp.lengths), f"null with task={task.name}")
        if task.resume_from is not None and not tracking.enabled:  # the checkpoints are in the store
            raise ConfigError("task.resume_from", task.resume_from, "null with tracking.enabled=false "
                              "(a run's checkpoints are read from its tracking store)")
    elif inp.planned_shape:  # refuse before allocating
        check_memory(model, inp.planned_shape, one_step=False, max_memory_gb=run.max_memory_gb)
    analysis = validate_analysis(cfg.analysis, model, run.max_memory_gb)
    return Experiment(seed, bool(cfg.dry_run), bool(cfg.resume), cfg.model.name, model, weights, inp,
                      task, run, tracking, analysis)


def parse_tracking(tracking: DictConfig) -> TrackingSpec:
    """`tracking.*` alone, for the sweep's parent run: each job's other keys are checked in its job."""
    return validate_tracking(tracking)


def estimate_run(experiment: Experiment, shapes: dict[str, tuple[int, ...]],
                 file_training_bytes: int | None = None) -> int:
    """The run's peak memory in bytes, TensorFlow's base included: what the dry run prints and
    `run.max_memory_gb` is checked against; `shapes` are the run's `expected_shapes`.

    Training's peak (`task_memory.training_bytes`) comes before the forward pass of its small
    held-out batch, and is the run's; for `task=file`, `file_training_bytes` gives it from the
    file's sizes (`compute/file_task.file_training_bytes`).
    """
    if file_training_bytes is not None:
        return TF_BASE_BYTES + file_training_bytes
    if experiment.task is not None:
        return TF_BASE_BYTES + training_bytes(experiment.task, experiment.model)
    return estimate_bytes(shapes, experiment.model, shapes[names.INPUT][-1])


def check_memory(model: ModelSpec, shape: tuple[int, int, int], one_step: bool, max_memory_gb: float) -> None:
    """Refuses an input of shape (B, T, F) whose run would need more than `run.max_memory_gb`."""
    batch, steps, features = shape
    needed = estimate_bytes(expected_shapes(model, batch, steps, features, one_step), model, features)
    if needed > max_memory_gb * 2**30:
        raise ConfigError(
            "input",
            f"(B={batch}, T={steps}, F={features}) with model.units={list(model.units)}",
            f"a size whose arrays fit in run.max_memory_gb={max_memory_gb:g}; "
            f"this one needs about {needed / 2**30:.1f} GB",
        )
