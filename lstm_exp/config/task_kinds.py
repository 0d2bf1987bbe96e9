"""The synthetic tasks as one table: what each feeds the stack, what it asks back, and which keys of
its own the config must hold. Validation (`task_validate.py`), the memory estimate (`task_memory.py`)
and training read it before any data exists; `compute/tasks.py` draws each task's data.

    task      inputs F      readout O          targets             loss           causal  own keys
    adding    2             1                  one, (N, 1)         mse            no
    copy      symbols + 2   symbols + 1        per step, (N, T)    crossentropy   yes     symbols, copy_length
    flipflop  3             3                  per step, (N, T, 3) mse            yes     pulse_prob
    sine      1             1                  per step, (N, T, 1) mse            yes

A causal task's target at step t depends only on steps <= t: a backward direction reads the future,
so a bidirectional model would be answering from the answer (sine: x_{t+1} is its input at t + 1).
`draw_bytes` bounds what drawing a split holds per input value (see `task_memory.py`).
"""

from collections.abc import Callable
from dataclasses import dataclass

from lstm_exp.errors import ConfigError

NO_TASK = "none"  # the forward pass only: nothing trained
FILE_TASK = "file"  # the user's own data (`compute/file_task.py`): its sizes come from the file
MAX_TIMESTEPS = 10_000
MAX_SYMBOLS = 1_000


def whole_number(key: str, value: object, limit: int, low: int = 1) -> int:
    """`value` if it is an integer from `low` to `limit`, else a ConfigError naming `key`."""
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= limit:
        raise ConfigError(key, value, f"an integer from {low} to {limit}")
    return value


def _check_copy(task) -> None:
    whole_number("task.symbols", task.symbols, MAX_SYMBOLS, low=2)
    length = whole_number("task.copy_length", task.copy_length, MAX_TIMESTEPS)
    if 2 * length + 1 > task.timesteps:
        raise ConfigError("task.timesteps", task.timesteps,
                          f"at least 2 * task.copy_length + 1 = {2 * length + 1} (a delay of >= 1 step)")


def _check_flipflop(task) -> None:
    if not (isinstance(task.pulse_prob, int | float) and 0 < task.pulse_prob <= 1):
        raise ConfigError("task.pulse_prob", task.pulse_prob, "a probability in (0, 1]")


@dataclass(frozen=True)
class TaskKind:
    """One row of the table (see the module docstring)."""

    inputs: Callable[[object], int]  # F, the input size fed to the first layer, from the task config
    outputs: Callable[[object], int]  # O, the readout's size: values for mse, classes for crossentropy
    per_step: bool  # a target at every step; False: one target per sequence, from the final state
    loss: str  # mse | crossentropy
    causal: bool
    draw_bytes: float  # bytes held per input value while a split is drawn (`task_memory.py`)
    draw_step_bytes: float = 0  # and per sequence and step besides (copy: its int64 codes, int32 y)
    check: Callable[[object], None] = lambda task: None  # the task's own keys (timesteps already valid)

    def target_width(self, task) -> int:
        """Values per target: a class index for crossentropy, else one per readout output."""
        return 1 if self.loss == "crossentropy" else self.outputs(task)


TASK_KINDS = {
    "adding": TaskKind(lambda task: 2, lambda task: 1, per_step=False, loss="mse", causal=False,
                       draw_bytes=16),
    "copy": TaskKind(lambda task: task.symbols + 2, lambda task: task.symbols + 1, per_step=True,
                     loss="crossentropy", causal=True, draw_bytes=12, draw_step_bytes=12, check=_check_copy),
    "flipflop": TaskKind(lambda task: 3, lambda task: 3, per_step=True, loss="mse", causal=True,
                         draw_bytes=34, check=_check_flipflop),
    "sine": TaskKind(lambda task: 1, lambda task: 1, per_step=True, loss="mse", causal=True, draw_bytes=24),
}
TASK_NAMES = (NO_TASK, *TASK_KINDS, FILE_TASK)
