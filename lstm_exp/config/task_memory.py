"""The memory a training task needs, estimated from its config alone, and its check against
`run.max_memory_gb` (before any data is drawn).

An upper bound, in bytes, of what training adds to the process; `run.max_memory_gb` is checked
against it plus TensorFlow's base (`config/memory.py`):

- the data sets kept for training: x and y of both splits, float32 (copy's y: int32);
- drawing a split (`compute/tasks.py`): NumPy draws in float64 and the float32 copy, at most
  `TaskKind.draw_bytes` per input value of the larger split (flipflop's peak is ~33: signs, pulses, x,
  the index of each step's last pulse and y, in float64 and int64; copy's ~12: the one-hot float64
  and its float32 copy; adding's 16: values, marks and their stack). It is counted on top of the
  rest: the allocator keeps much of what drawing freed;
- the activations of one batch's gradient or of one validation chunk's forward pass, whichever is
  larger: per sequence, step, layer and direction, `ACTIVATION_FLOATS` (gradient) or `EVAL_FLOATS`
  (forward only) floats per unit, plus the layer's input;
- the weights with Adam's two moments and the gradient (x4).

Measured against a real run's peak RSS in the README ("Training on synthetic tasks").
"""

from lstm_exp.config.memory import TF_BASE_BYTES
from lstm_exp.config.specs import ModelSpec
from lstm_exp.config.task_kinds import TASK_KINDS
from lstm_exp.errors import ConfigError

# Per unit, sequence, step, layer and direction kept for the backward pass. Measured: `task=sine`
# [256], T=100, batch 1024 (activations are nearly all of it) peaked 1105 to 1224 MiB above
# TensorFlow's base in four runs of the same config, 11.1 to 11.7 floats per unit and step; 13
# covers that spread (scripts/bench_memory.py prints the peak and the estimate).
ACTIVATION_FLOATS = 13
# The validation pass keeps no gradient: its sequences and the step's temporaries. Measured: raising
# the validation chunk from 200 to 1024 sequences (adding [64], T=200) added 18 MiB, ~1.4 floats per
# unit and step; 4 leaves a margin.
EVAL_FLOATS = 4
EVAL_CHUNK = 1024  # validation sequences per forward call (`compute/training.py`)


def training_bytes(task, spec: ModelSpec) -> int:
    """Bytes training on `task` may hold at its peak (an upper bound; see the module docstring).

    Example:
        >>> training_bytes(compose("task=adding").task, ModelSpec("lstm", (4,))) / 2**20
        2.3...
    """
    kind = TASK_KINDS[task.name]
    steps, features = task.timesteps, kind.inputs(task)
    targets = steps if kind.per_step else 1
    drawing = kind.draw_bytes * max(task.train_size, task.val_size) * steps * features
    return drawing + data_training_bytes(spec, task.train_size, task.val_size, steps, features,
                                         targets * kind.target_width(task), kind.outputs(task),
                                         task.batch_size)


def data_training_bytes(spec: ModelSpec, train: int, val: int, steps: int, features: int,
                        target_values: int, outputs: int, batch_size: int) -> int:
    """Bytes training on data of these sizes holds at its peak, drawing aside (`task=file` has none).

    Args:
        target_values: values of one sequence's target (T * D per step, D last step, T or 1 classes).
        outputs: the readout's size.
    """
    kept = 4 * (train + val) * (steps * features + target_values)
    train_rows, eval_rows = batch_size, min(EVAL_CHUNK, val)
    train_floats, eval_floats, weights, fan_in = 0, 0, 0, features
    for k, units in enumerate(spec.units):
        train_floats += len(spec.directions) * (ACTIVATION_FLOATS * units + fan_in)
        eval_floats += len(spec.directions) * (EVAL_FLOATS * units + fan_in)
        weights += len(spec.directions) * (fan_in + spec.hidden_size(k) + 2) * 4 * units
        fan_in = spec.output_size(k)
    weights += (fan_in + 1) * outputs
    activations = 4 * steps * max(train_rows * train_floats, eval_rows * eval_floats)
    return kept + activations + 4 * 4 * weights


def check_training_memory(task, spec: ModelSpec, max_memory_gb: float) -> None:
    """Refuses a task whose training would need more than `run.max_memory_gb`, naming its sizes.

    Raises:
        ConfigError: on `task.train_size`, with the other sizes and the estimate in the message.
    """
    needed = TF_BASE_BYTES + training_bytes(task, spec)
    if needed > max_memory_gb * 2**30:
        raise ConfigError(
            "task.train_size", task.train_size,
            f"a size whose training fits in run.max_memory_gb={max_memory_gb:g}: with task.val_size="
            f"{task.val_size}, task.timesteps={task.timesteps}, task.batch_size={task.batch_size} "
            f"and model.units={list(spec.units)} it needs about {needed / 2**30:.1f} GB",
        )
