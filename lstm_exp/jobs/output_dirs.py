"""Hydra's output folders, `hydra.run.dir` (a run) and `hydra.sweep.dir` (a sweep), as bad input.

Hydra creates them with `mkdir(parents=True)`; below a plain file (`hydra.run.dir=notes.txt/out`) that
raises NotADirectoryError, or FileExistsError for the file itself. A folder Hydra cannot write its
files in (`.hydra/config.yaml`, the job's log) raises another OSError: a full disk, a read-only
filesystem, no permission. The sweeper checks its folder before making it, and makes it with
`make_output_dir`. A run's folder Hydra makes and writes before any of our code runs (its callbacks
cannot stop a run: it turns their errors into warnings), so `main` recognises that failure afterwards,
from the arguments of the `hydra.core.utils.run_job` call that raised it.
"""

from pathlib import Path

from hydra.core.utils import run_job
from omegaconf import OmegaConf

from lstm_exp.errors import ConfigError


def check_output_dir(key: str, value: str) -> None:
    """Raises ConfigError unless `value` is a folder or could be made one (no file in its way)."""
    path = Path(value)
    for existing in (path, *path.parents):
        # is_symlink: a dangling link, which mkdir finds in its way though exists() does not.
        if existing.exists() or existing.is_symlink():
            break
    if not existing.is_dir():
        raise ConfigError(key, value, f"a folder, or a path where one can be made ('{existing}' is not a "
                          "folder)")


def make_output_dir(key: str, value: str) -> Path:
    """The folder `value`, made if missing; a ConfigError naming `key` if it cannot be made or written."""
    check_output_dir(key, value)
    path = Path(value)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise unwritable(key, value, error) from None
    return path


def unwritable(key: str, value: str, error: OSError) -> ConfigError:
    """The ConfigError for an output folder that an OSError kept from being made or written."""
    where = f": '{error.filename}'" if error.filename else ""
    return ConfigError(key, value, f"a folder where files can be written ({error.strerror or error}{where})")


def output_dir_error(error: OSError) -> ConfigError | None:
    """The ConfigError when `error` is Hydra's `run_job` failing to make or write the job's folder.

    Our task function hands its own errors over instead of raising them through `run_job`, so an
    OSError raised there is Hydra's work on the folder (making it, saving `.hydra/`, the job's log).
    """
    arguments = _run_job_arguments(error)
    if arguments is None:
        return _remote_job_dir_error(error)
    key = arguments["job_dir_key"]  # hydra.run.dir, or hydra.sweep.dir in a sweep's job
    value = str(OmegaConf.select(arguments["config"], key))
    try:
        check_output_dir(key, value)
    except ConfigError as refused:
        return refused
    return unwritable(key, value, error)


def _remote_job_dir_error(error: OSError) -> ConfigError | None:
    """The ConfigError when a launcher's worker process (joblib's) failed in Hydra's `run_job`.

    Its traceback stayed in the worker; joblib hands over the error with that traceback's text as its
    cause. A sweep's job folder is `hydra.sweep.dir`, which the sweeper made, joined with the job's
    `hydra.sweep.subdir`: what failed to be made there is the subdir's value for that job.
    """
    remote = error.__cause__
    if remote is None or "in run_job" not in str(remote) or not error.filename:
        return None
    return unwritable("hydra.sweep.subdir", str(error.filename), error)


def _run_job_arguments(error: BaseException) -> dict | None:
    """The arguments of the `run_job` call that `error` came through, or None."""
    traceback = error.__traceback__
    while traceback is not None:
        if traceback.tb_frame.f_code is run_job.__code__:
            return traceback.tb_frame.f_locals
        traceback = traceback.tb_next
    return None
