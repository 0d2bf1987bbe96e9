"""The memory a training task needs, estimated from its config alone, and its check against
`run.max_memory_gb` (before any data is drawn).

An upper bound, in bytes, of what training adds to the process (TensorFlow's own ~0.6 GB aside):

- the data sets kept for training: x and y of both splits, float32 (copy's y: int32);
- drawing a split (`compute/tasks.py`): NumPy draws in float64 and the float32 copy, at most
  `DRAW_BYTES[task]` per input value of the larger split (flipflop's peak is ~33: signs, pulses, x,
  the index of each step's last pulse and y, in float64 and int64; copy's ~12: the one-hot float64
  and its float32 copy);
- the activations TensorFlow keeps for the gradient of one batch (or of one validation chunk,
  whichever is larger): per sequence, step, layer and direction, `ACTIVATION_FLOATS` floats per unit
  (gate pre-activations, gates, c, tanh c, h and their gradients) plus the layer's input;
- the weights with Adam's two moments and the gradient (x4).

Measured against a real run's peak RSS in the README ("Training on synthetic tasks").
"""

from lstm_exp.config.validate import ModelSpec
from lstm_exp.errors import ConfigError

DRAW_BYTES = {"adding": 24, "copy": 16, "flipflop": 40, "sine": 24}  # per input value (see above)
ACTIVATION_FLOATS = 32  # per unit, sequence, step, layer and direction kept for the backward pass
EVAL_CHUNK = 1024  # validation sequences per forward call (`compute/training.py`)


def input_width(task) -> int:
    """F, the input size a task feeds the first layer."""
    return {"adding": 2, "copy": task.symbols + 2, "flipflop": 3, "sine": 1}[task.name]


def output_width(task) -> int:
    """Size of the readout: values for MSE tasks, classes (symbols and blank) for copy."""
    return {"adding": 1, "copy": task.symbols + 1, "flipflop": 3, "sine": 1}[task.name]


def training_bytes(task, spec: ModelSpec) -> int:
    """Bytes training on `task` may hold at its peak (an upper bound; see the module docstring).

    Example:
        >>> training_bytes(compose("task=adding").task, ModelSpec("lstm", (4,))) / 2**20
        17.6...
    """
    steps, features = task.timesteps, input_width(task)
    sequences = task.train_size + task.val_size
    targets = steps if task.name != "adding" else 1
    target_width = output_width(task) if task.name in ("flipflop", "sine") else 1
    kept = 4 * sequences * (steps * features + targets * target_width)
    drawing = DRAW_BYTES[task.name] * max(task.train_size, task.val_size) * steps * features
    rows = max(task.batch_size, min(EVAL_CHUNK, task.val_size))
    activations, weights, fan_in = 0, 0, features
    for k, units in enumerate(spec.units):
        activations += len(spec.directions) * (ACTIVATION_FLOATS * units + fan_in)
        weights += len(spec.directions) * (fan_in + spec.hidden_size(k) + 2) * 4 * units
        fan_in = spec.output_size(k)
    weights += (fan_in + 1) * output_width(task)
    return kept + drawing + 4 * rows * steps * activations + 4 * 4 * weights


def check_training_memory(task, spec: ModelSpec, max_memory_gb: float) -> None:
    """Refuses a task whose training would need more than `run.max_memory_gb`, naming its sizes.

    Raises:
        ConfigError: on `task.train_size`, with the other sizes and the estimate in the message.
    """
    needed = training_bytes(task, spec)
    if needed > max_memory_gb * 2**30:
        raise ConfigError(
            "task.train_size", task.train_size,
            f"a size whose training fits in run.max_memory_gb={max_memory_gb:g}: with task.val_size="
            f"{task.val_size}, task.timesteps={task.timesteps}, task.batch_size={task.batch_size} "
            f"and model.units={list(spec.units)} it needs about {needed / 2**30:.1f} GB",
        )
