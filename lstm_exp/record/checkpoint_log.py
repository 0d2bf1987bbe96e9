"""Training checkpoints in the run: logged as artifacts, marked by tags, found again to resume.

Each checkpoint is one artifact, `checkpoints/epoch_0003.npz` (compute/checkpoints.py's format, with
its own digest). Plain artifacts rather than MLflow 3 logged models: a checkpoint is read back only by
a resume, which needs one file and its completeness, not a model flavor; a logged model per epoch adds
a model entity, a folder and a PENDING/READY state per checkpoint to every training run, and its
artifacts are still copied the same non-atomic way. Completeness is marked by the tags, set only after
the artifact is whole in the store:

    lstm_exp.checkpoint        the newest complete checkpoint's artifact path (what a resume reads)
    lstm_exp.best_checkpoint   the one with the lowest val_loss so far (earliest on a tie)

A kill during an upload leaves, at worst, a partial file that no tag names; a file altered later fails
its digest when read.
"""

import tempfile
from pathlib import Path

from lstm_exp.errors import ConfigError
from lstm_exp.record.store import TAG_PREFIX
from lstm_exp.record.store_locks import retry_locked

CHECKPOINT_DIR = "checkpoints"
CHECKPOINT_TAG = TAG_PREFIX + "checkpoint"
BEST_CHECKPOINT_TAG = TAG_PREFIX + "best_checkpoint"
CONTINUED_FROM_TAG = TAG_PREFIX + "continued_from"  # on a run that went on from another's checkpoint
REQUEUES_TAG = TAG_PREFIX + "requeues"  # times Slurm requeued the job before this run


def checkpoint_name(epochs_done: int) -> str:
    """The checkpoint's file name: sorts in epoch order."""
    return f"epoch_{epochs_done:04d}.npz"


def log_checkpoint(client, run_id: str, path: Path, best: bool) -> str:
    """Uploads one checkpoint file, then marks it the newest (and the best, if `best`); its path."""
    retry_locked(lambda: client.log_artifact(run_id, str(path), CHECKPOINT_DIR))
    artifact = f"{CHECKPOINT_DIR}/{path.name}"
    retry_locked(lambda: client.set_tag(run_id, CHECKPOINT_TAG, artifact))
    if best:
        retry_locked(lambda: client.set_tag(run_id, BEST_CHECKPOINT_TAG, artifact))
    return artifact


def stopped_twin(client, experiment_id: str, tags: dict[str, str]) -> str | None:
    """The newest run of the same config and code that ended KILLED or FAILED with a checkpoint."""
    keys = [TAG_PREFIX + "config_hash", TAG_PREFIX + "code_version"]
    query = " and ".join(f"tags.`{k}` = '{tags[k]}'" for k in keys)
    query += f" and tags.`{CHECKPOINT_TAG}` != '' and attributes.status != 'RUNNING'"
    query += " and attributes.status != 'FINISHED'"
    found = retry_locked(lambda: client.search_runs([experiment_id], query, max_results=1,
                                                     order_by=["attributes.start_time DESC"]))
    return found[0].info.run_id if found else None


def checked_source(client, run_id: str, config_hash: str, key: str = "task.resume_from") -> str:
    """The artifact path of the checkpoint to go on from in run `run_id`, after checking the run.

    Raises:
        ConfigError: no such run, not a training run with a checkpoint, or another config.
    """
    from mlflow.exceptions import MlflowException

    try:
        run = retry_locked(lambda: client.get_run(run_id))
    except MlflowException:
        raise ConfigError(key, run_id, "the id of a run in the tracking store (no run has this id)") from None
    artifact = run.data.tags.get(CHECKPOINT_TAG)
    if not artifact:
        raise ConfigError(key, run_id, "a training run with a checkpoint (this run has none: it did not "
                          "train, or stopped before its first checkpoint)")
    theirs = run.data.tags.get(TAG_PREFIX + "config_hash")
    if theirs != config_hash:
        raise ConfigError(key, run_id, f"a run of this same config (config hash {config_hash}; that run's "
                          f"is {theirs}): change the overrides to match it, or start afresh")
    return artifact


def download_checkpoint(client, run_id: str, artifact: str, into: Path) -> Path:
    """Copies one checkpoint artifact of the run into the folder `into`; the local file."""
    return Path(retry_locked(lambda: client.download_artifacts(run_id, artifact, str(into))))


def fetch_source(client, run_id: str, config_hash: str, key: str):
    """Checks run `run_id` and reads its newest checkpoint (compute/checkpoints.py, digest checked).

    Returns:
        The `Checkpoint`.

    Raises:
        ConfigError: the run cannot be continued, or its checkpoint is truncated or altered.
    """
    from lstm_exp.compute.checkpoints import read_checkpoint

    artifact = checked_source(client, run_id, config_hash, key)
    with tempfile.TemporaryDirectory(prefix="lstm_exp_resume_") as tmp:
        local = download_checkpoint(client, run_id, artifact, Path(tmp))
        return read_checkpoint(local, key, shown=f"{run_id} (its {artifact})")
