"""The memory a training task needs, estimated from its sizes alone, and its check against
`run.max_memory_gb` (before any data is drawn).

Training's peak resident memory is the larger of its two phases (memory freed by the first goes back
to the system: the data's large arrays are mapped and unmapped whole):

- making the data: TensorFlow's base, then a split drawn (NumPy's float64 and int64 temporaries and
  the float32 result; `TaskKind.draw_bytes` per input value, `draw_step_bytes` per step), the
  training split kept while the validation split is drawn;
- training: TensorFlow's base and `TRAINING_EXTRA_BYTES` (the traced gradient and Adam), the data
  sets kept (x and y of both splits), the weights with their gradient and Adam's two moments (x4),
  and the larger of one batch's gradient and one validation chunk's forward pass:
  - a batch's gradient holds, per sequence, step, layer and direction, `ACTIVATION_FLOATS[cell]`
    floats per unit (a per-step readout's gradient adds `SEQUENCE_GRAD_FLOATS`) and the layer's
    input, and per step `STEP_WEIGHT_FLOATS` floats per weight of the layer (the backward loop's
    per-step gradient of the kernels, which the allocator keeps in part);
  - a validation chunk of up to `EVAL_CHUNK` sequences holds `EVAL_FLOATS[cell]` floats per unit and the
    layer's input, per sequence and step.

The estimate is a function of the sizes (`TrainingSizes`), whatever made the data. Its constants are
fitted to peaks measured by scripts/bench_memory.py (README, "Training on synthetic tasks"), each
1-2 % above the highest measured, so the estimate is 1.01-1.10x every peak measured there.
"""

from dataclasses import dataclass

from lstm_exp.config.memory import TF_BASE_BYTES
from lstm_exp.config.specs import ModelSpec
from lstm_exp.config.task_kinds import TASK_KINDS
from lstm_exp.errors import ConfigError

FLOAT32 = 4
MIB = 2**20
TF1_CELL = "lstm (TF1-style cell)"  # the cell `model.peepholes`, the clips and `model.proj_size` take
# What training holds above TensorFlow's base whatever its size: the traced train step, its gradient
# graph and Adam's, the allocator's pools (a tiny run, `task=sine` [4], T=10, 64 sequences, peaks at
# 820.2 MiB; fitted with the floats below: 10 MiB).
TRAINING_EXTRA_BYTES = 10 * MIB
# Per unit, sequence and step of one layer and direction during a batch's gradient, for a readout of
# the final state (a per-step readout adds SEQUENCE_GRAD_FLOATS). Fitted, with STEP_WEIGHT_FLOATS and
# TRAINING_EXTRA_BYTES, to `task=sine`: LSTM [64]-[512] and [128,128], T=50-400, batch 256-1024,
# 8 sizes (1-4 runs each) whose peaks held 10.6-13.0 floats per unit and step in all: the fit is 1.3 to
# 9.5 % above each peak (scripts/bench_memory.py). Peaks of one size vary: [256], T=100, batch 1024
# peaked at 1896-1908 MiB, and at 2030 MiB once under heavy load; the fit is 1.3 % above that one.
# GRU and SimpleRNN (one size each, 1.5 % above) keep fewer: fewer gates.
# The TF1-style cell (`model.peepholes`, clips, `model.proj_size`) is a Python cell that emits its gates
# every step: [256], T=100, batch 1024 on `task=sine` held 26.1 floats per unit and step (2 % above).
ACTIVATION_FLOATS = {"lstm": 10.25, "gru": 7.8, "simple_rnn": 3.8, TF1_CELL: 25.2}
# A per-step readout (copy, flipflop, sine) back-propagates into the whole sequence; a readout of the
# final state (adding) does not. Measured: bidirectional LSTM on `task=adding` kept 9.2 floats per
# unit and step, against 10.8 for the same size on `task=sine`.
SEQUENCE_GRAD_FLOATS = 1.5
# Per step and weight of the layer: a small batch with large units keeps more per unit and step than
# a large batch (batch 256, [512]: 13.0 floats; batch 1024, [64]-[256]: 10.6-10.9).
STEP_WEIGHT_FLOATS = 0.43
# The validation pass keeps no gradient. Measured: a 1024-sequence chunk ([64] T=200, [256] T=100)
# held 4.2 and 4.4 floats per unit and step; the TF1-style cell's ([64] T=200) 15.8.
EVAL_FLOATS = {"lstm": 4.5, "gru": 4.5, "simple_rnn": 4.5, TF1_CELL: 16.2}
EVAL_CHUNK = 1024  # validation sequences per forward call (`compute/training.py`)


@dataclass(frozen=True)
class TrainingSizes:
    """What training's memory depends on: the data's sizes and how they are made.

    Attributes:
        train_size, val_size: sequences in each split (N).
        timesteps: T.
        features: F, the input size the first layer reads.
        target_values: values per sequence in y (float32 or int32): T * width per step, else width.
        outputs: the readout's width (O).
        per_step: a target at every step (the gradient reaches the whole sequence).
        batch_size: sequences per gradient step.
        draw_bytes: bytes held per input value while one split is made (its result included).
        draw_step_bytes: bytes held per sequence and step while one split is made, besides.
    """

    train_size: int
    val_size: int
    timesteps: int
    features: int
    target_values: int
    outputs: int
    per_step: bool
    batch_size: int
    draw_bytes: float
    draw_step_bytes: float = 0


def task_sizes(task) -> TrainingSizes:
    """A synthetic task's sizes, from its config and `TASK_KINDS`."""
    kind = TASK_KINDS[task.name]
    targets = task.timesteps if kind.per_step else 1
    return TrainingSizes(task.train_size, task.val_size, task.timesteps, kind.inputs(task),
                         targets * kind.target_width(task), kind.outputs(task), kind.per_step,
                         task.batch_size, kind.draw_bytes, kind.draw_step_bytes)


def _split_bytes(sizes: TrainingSizes, sequences: int) -> tuple[float, float]:
    """(kept, peak while made): a split's float32 x and y, and what making it holds at most."""
    kept = FLOAT32 * sequences * (sizes.timesteps * sizes.features + sizes.target_values)
    drawing = sequences * sizes.timesteps * (sizes.draw_bytes * sizes.features + sizes.draw_step_bytes)
    return kept, drawing


def layer_terms(sizes: TrainingSizes, spec: ModelSpec) -> tuple[float, float, int]:
    """Per sequence and step: (gradient floats, validation floats); and the weights (stack and readout)."""
    cell = TF1_CELL if spec.has_extras else spec.cell
    per_unit = ACTIVATION_FLOATS[cell] + (SEQUENCE_GRAD_FLOATS if sizes.per_step else 0)
    train, evaluate, weights, fan_in = 0.0, 0.0, 0, sizes.features
    gates = {"lstm": 4, "gru": 3, "simple_rnn": 1}[spec.cell]
    for k, units in enumerate(spec.units):
        layer_weights = (fan_in + spec.hidden_size(k) + 2) * gates * units  # kernel, recurrent, bias
        # A layer's input is a tensor of its own for the first layer (the batch) and where two
        # directions are concatenated; otherwise it is the layer below's sequence, counted there.
        own_input = fan_in if k == 0 or spec.bidirectional else 0
        train += len(spec.directions) * (per_unit * units + own_input
                                         + STEP_WEIGHT_FLOATS * layer_weights / sizes.batch_size)
        evaluate += len(spec.directions) * (EVAL_FLOATS[cell] * units + own_input)
        weights += len(spec.directions) * layer_weights
        fan_in = spec.output_size(k)
    return train, evaluate, weights + (fan_in + 1) * sizes.outputs


def training_peak_bytes(sizes: TrainingSizes, spec: ModelSpec) -> int:
    """Training's peak resident memory in bytes, TensorFlow's base included (see the module docstring).

    Example:
        >>> training_peak_bytes(task_sizes(compose("task=adding").task), ModelSpec("lstm", (4,))) / 2**20
        831.1...
    """
    kept_train, draw_train = _split_bytes(sizes, sizes.train_size)
    kept_val, draw_val = _split_bytes(sizes, sizes.val_size)
    making = max(draw_train, kept_train + draw_val)
    train_floats, eval_floats, weights = layer_terms(sizes, spec)
    steps = sizes.timesteps
    activations = FLOAT32 * steps * max(sizes.batch_size * train_floats,
                                        min(EVAL_CHUNK, sizes.val_size) * eval_floats)
    training = TRAINING_EXTRA_BYTES + kept_train + kept_val + 4 * FLOAT32 * weights + activations
    return TF_BASE_BYTES + int(max(making, training))


def training_bytes(task, spec: ModelSpec) -> int:
    """Bytes training on a synthetic `task` may hold above TensorFlow's base, at its peak."""
    return training_peak_bytes(task_sizes(task), spec) - TF_BASE_BYTES


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
