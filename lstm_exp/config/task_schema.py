"""Schema of the `task` config group: training on a synthetic task or a file before the forward pass.

Kept apart from `schema.py` so that the task group can grow without touching the run's schema;
`ExperimentConfig.task` holds one `TaskConfig`. Every training control defaults to what training did
before it existed (no early stopping, no clipping, a constant rate, no weight decay).
"""

from dataclasses import dataclass
from typing import Any


@dataclass
class TaskConfig:
    name: str = "none"  # none | adding | copy | flipflop | sine | file; none = forward pass only
    timesteps: int = 30  # T of every sequence (copy: 2 * copy_length + delay); file: the file's
    train_size: int = 2000  # training sequences (file: the file's)
    val_size: int = 500  # validation sequences; the baseline and val_loss are measured on them
    epochs: int = 5  # the most epochs; early stopping (patience) may end training sooner
    batch_size: int = 64
    learning_rate: float = 0.01  # Adam's; with a schedule, its peak
    copy_length: int = 10  # copy: S, the symbols to remember (Arjovsky et al. 2016 used 10)
    symbols: int = 8  # copy: alphabet size K, blank and delimiter excluded (Arjovsky et al.: 8)
    pulse_prob: float = 0.05  # flipflop: chance of a pulse per step and channel
    # file: an .npz with x (N, T, F), y, and optionally x_val, y_val, lengths, lengths_val
    path: str | None = None
    val_fraction: float = 0.2  # file without x_val: the share of x held out (a seeded split)
    classes: int | None = None  # file with integer y: the number of classes; null: the largest y + 1
    # Early stopping on val_loss, as keras.callbacks.EarlyStopping(mode="min"); 0 = off
    patience: int = 0
    min_delta: float = 0.0  # an improvement is a val_loss below the best by more than this
    restore_best_weights: bool = False  # end with the best epoch's weights (the forward pass uses them)
    clipnorm: float | None = None  # each gradient's norm clipped to this (Keras' clipnorm)
    global_clipnorm: float | None = None  # or all gradients' joint norm (Keras' global_clipnorm)
    schedule: str = "constant"  # constant | cosine | step: the learning rate per epoch
    warmup_epochs: int = 0  # epochs of linear warm-up to learning_rate before the schedule
    step_size: int = 10  # step: epochs between two drops
    step_factor: float = 0.5  # step: what each drop multiplies the rate by
    weight_decay: float = 0.0  # decoupled weight decay (Keras 3 Adam's weight_decay, AdamW-style)
    checkpoint_every: int = 1  # a checkpoint into the run every this many epochs, and after the last
    # The id of a killed training run of this same config: this run goes on from its last checkpoint.
    # Typed Any so that a number-like id stays as given (validated in task_validate).
    resume_from: Any = None
