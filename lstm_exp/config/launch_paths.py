"""Relative paths in a config name files of the launch directory, wherever Hydra runs the job.

With `hydra.job.chdir=true` Hydra runs each job inside its own output folder. Read from there, a
relative `input.path` would name a file that is not there, and the default store
(`sqlite:///<launch directory>/mlflow.db`) would become one store per job, apart from the sweep's
parent. So paths are anchored to `hydra.runtime.cwd`, the directory the command was started in.
"""

from pathlib import Path

from omegaconf import DictConfig, OmegaConf

# Keys whose value is a file path (or, for initial_state, one of the words below).
FILE_KEYS = ("input.path", "model.weights.path", "input.initial_state", "task.path")
INITIAL_STATE_WORDS = ("zeros", "random")


def anchor_file_paths(cfg: DictConfig, launch_dir: Path) -> None:
    """Makes the relative file paths of `cfg` absolute against `launch_dir`, when the job runs elsewhere.

    A job that runs in its launch directory keeps its paths as written (and so its config hash).

    Example:
        >>> cfg = OmegaConf.create({"input": {"path": "data/x.npy", "initial_state": "zeros"},
        ...                         "model": {"weights": {"path": None}}})
        >>> anchor_file_paths(cfg, Path("/launch"))  # from a job folder, /launch/multirun/.../0
        >>> cfg.input.path
        '/launch/data/x.npy'
    """
    if Path.cwd().resolve() == launch_dir.resolve():
        return
    for key in FILE_KEYS:
        value = OmegaConf.select(cfg, key)
        if not isinstance(value, str) or not value or Path(value).is_absolute():
            continue
        if key == "input.initial_state" and value in INITIAL_STATE_WORDS:
            continue
        OmegaConf.update(cfg, key, str(launch_dir / value))
