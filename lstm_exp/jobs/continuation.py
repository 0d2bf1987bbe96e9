"""Where a tracked training starts, and where its checkpoints go.

A training goes on from another run's newest checkpoint when
- `task.resume_from=RUN_ID` names that run (it must be a training run of this same config), or
- `resume=true` finds no FINISHED run of this config and code but a KILLED or FAILED one with a
  checkpoint (the same command run again after a kill, or a Slurm job requeued after its time limit).
The new run is tagged `lstm_exp.continued_from=<run id>`; the stopped run is only read, never
written: it keeps the status it ended with. Under Slurm a run is also tagged `lstm_exp.requeues`,
Slurm's own count of the job's requeues (`SLURM_RESTART_COUNT`).
"""

import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from lstm_exp.compute.checkpoints import Checkpoint, save_checkpoint
from lstm_exp.config.specs import Experiment
from lstm_exp.record import checkpoint_log
from lstm_exp.record import store as mlflow_store

SLURM_RESTART_COUNT = "SLURM_RESTART_COUNT"  # set by Slurm in a job it requeued


@dataclass
class Start:
    """Where a training starts: a checkpoint of another run, or (None) the beginning; the run's tags."""

    checkpoint: Checkpoint | None = None
    tags: dict[str, str] = field(default_factory=dict)


def find_start(experiment: Experiment, uri: str, tags: dict[str, str]) -> Start:
    """The checkpoint this job's training goes on from, if any, with the tags that say so.

    Args:
        experiment: the parsed job.
        uri: the job's tracking store.
        tags: the run's tags (`store.run_tags`): its config hash and code version.

    Raises:
        ConfigError: `task.resume_from` names a run that cannot be continued, or the checkpoint to go
            on from is truncated or altered.
    """
    task = experiment.task
    if task is None:
        return Start()
    start = Start()
    restarts = os.environ.get(SLURM_RESTART_COUNT)
    if restarts is not None:
        start.tags[checkpoint_log.REQUEUES_TAG] = restarts
    if task.resume_from is None and not experiment.resume:
        return start
    config_hash = tags[mlflow_store.TAG_PREFIX + "config_hash"]
    timeout_s = experiment.tracking.timeout_s
    client, experiment_id = mlflow_store.open_experiment(uri, experiment.tracking.experiment, timeout_s)
    if task.resume_from is not None:
        source, key = task.resume_from, "task.resume_from"
    else:
        if mlflow_store.finished_twin(client, experiment_id, tags, timeout_s):
            return start  # opening the run finds that twin and skips the job
        source, key = checkpoint_log.stopped_twin(client, experiment_id, tags), "resume"
        if source is None:
            return start
    start.checkpoint = checkpoint_log.fetch_source(client, source, config_hash, key)
    start.tags[checkpoint_log.CONTINUED_FROM_TAG] = source
    return start


def checkpoint_saver(record, folder: Path,
                     after: Callable[[], None] | None = None) -> Callable[[Checkpoint], None]:
    """Writes each checkpoint into `folder` and uploads it into the record's run, marking the best.

    Args:
        record: the open `RunRecord`.
        folder: a temporary folder; each file is removed once uploaded.
        after: called once each checkpoint is in the run (a held Slurm requeue goes ahead there).
    """
    best = float("inf")

    def save(checkpoint: Checkpoint) -> None:
        nonlocal best
        path = save_checkpoint(folder / checkpoint_log.checkpoint_name(checkpoint.epochs_done), checkpoint)
        is_best = checkpoint.val_loss < best  # strictly lower: the earliest of equals stays marked
        best = min(best, checkpoint.val_loss)
        record.log_checkpoint(str(path), is_best)
        path.unlink()
        if after is not None:
            after()

    return save


def temporary_folder():
    """A folder for checkpoint files on their way into the run (removed with what is left in it)."""
    return tempfile.TemporaryDirectory(prefix="lstm_exp_checkpoints_")
