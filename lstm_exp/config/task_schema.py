"""Schema of the `task` config group: training on a synthetic task before the forward pass.

Kept apart from `schema.py` so that the task group can grow without touching the run's schema;
`ExperimentConfig.task` holds one `TaskConfig`.
"""

from dataclasses import dataclass
from typing import Any


@dataclass
class TaskConfig:
    name: str = "none"  # none | adding | copy | flipflop | sine; none = forward pass only
    timesteps: int = 30  # T of every sequence (copy: 2 * copy_length + delay)
    train_size: int = 2000  # training sequences
    val_size: int = 500  # validation sequences; the baseline and val_loss are measured on them
    epochs: int = 5
    batch_size: int = 64
    learning_rate: float = 0.01  # Adam
    copy_length: int = 10  # copy: S, the symbols to remember (Arjovsky et al. 2016 used 10)
    symbols: int = 8  # copy: alphabet size K, blank and delimiter excluded (Arjovsky et al.: 8)
    pulse_prob: float = 0.05  # flipflop: chance of a pulse per step and channel
    checkpoint_every: int = 1  # a checkpoint into the run every this many epochs, and after the last
    # The id of a killed training run of this same config: this run goes on from its last checkpoint.
    # Typed Any so that a number-like id stays as given (validated in task_validate).
    resume_from: Any = None
