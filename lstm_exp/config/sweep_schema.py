"""Schema of the `sweep` section: how a `-m` sweep's jobs are grouped and compared at its end.

Kept apart from `schema.py`, as the task group is; `ExperimentConfig.sweep` holds one `SweepConfig`.
A single run ignores it. Not part of a run's config hash (`record/identity.py`): grouping a sweep
differently does not change what its jobs compute.
"""

from dataclasses import dataclass


@dataclass
class SweepConfig:
    # Jobs that agree on these keys form a group (their seeds are its repeats). None: every key the
    # sweep varies except `seed`. A config group's name (`model`) stands for its `model.name`.
    group_by: list[str] | None = None
    # The metric the verdict compares groups by. None: val_loss when the jobs train, else no verdict.
    metric: str | None = None
    direction: str = "minimize"  # minimize | maximize: which end of `metric` is better
    # Set by the search sweeper (`hydra/sweeper=search`) on each trial's job, not by users: the trial's
    # number, its study's name and storage, the pruner (the job reports val_loss to the trial and
    # may be pruned: the pruner decides in the job's process, so the job must build the same one).
    trial: int | None = None
    study: str | None = None
    storage: str | None = None
    pruner: str | None = None
