"""Validation of a sweep's launcher settings (`hydra.launcher.*`), once, before any job starts.

Hydra's launchers (joblib, submitit local and Slurm, ours for Slurm) take their numbers as given:
`n_jobs=0` ends in joblib's traceback after the sweep has started, `timeout_min=-1` in a job that
dies without a word, `poll_s=nan` in a wait that never ends. The sweep checks them here, in the
launching process, before its parent run is opened.
"""

import math
import os
import re
from dataclasses import dataclass

from omegaconf import DictConfig

from lstm_exp.errors import ConfigError

MAX_PARALLEL_JOBS = 1024  # every job is a process that imports TensorFlow (~0.5 GB): more is a typo
MAX_TIMEOUT_MIN = 366 * 24 * 60  # a year; Slurm's own limit is a partition's, usually days


@dataclass(frozen=True)
class Limit:
    """The closed range of one launcher setting."""

    low: float
    high: float
    integer: bool = True
    nullable: bool = False

    def allowed(self) -> str:
        kind = f"an integer from {int(self.low)} to {int(self.high)}" if self.integer else (
            f"a finite number from {self.low:g} to {self.high:g}")
        return kind + (", or null" if self.nullable else "")


# Every numeric setting of the launchers Hydra offers us; a key a launcher lacks is not looked at.
LIMITS = {
    # joblib (n_jobs has its own check: negative values count back from the CPUs)
    "timeout": Limit(0.001, 1e7, integer=False, nullable=True),  # seconds per job
    "verbose": Limit(0, 100),
    # submitit_local, submitit_slurm and slurm
    "timeout_min": Limit(1, MAX_TIMEOUT_MIN),
    "cpus_per_task": Limit(1, 4096, nullable=True),
    "gpus_per_node": Limit(0, 64, nullable=True),
    "tasks_per_node": Limit(1, 1024),
    "nodes": Limit(1, 100_000),
    "mem_gb": Limit(1, 1_000_000, nullable=True),
    # submitit_slurm and slurm
    "cpus_per_gpu": Limit(1, 4096, nullable=True),
    "gpus_per_task": Limit(1, 64, nullable=True),
    "array_parallelism": Limit(1, 1_000_000),
    "signal_delay_s": Limit(0, MAX_TIMEOUT_MIN * 60),
    "max_num_timeout": Limit(0, 1000),
    # slurm (lstm_exp's launcher)
    "lost_job_grace_s": Limit(0, 86_400, integer=False),
    "poll_s": Limit(0.01, 3600, integer=False),
}


# joblib's settings that are words, not numbers: each reached joblib's own traceback once the sweep had
# started (`pre_dispatch` is even evaluated by joblib as a Python expression of n_jobs).
CHOICES = {
    "backend": (None, "loky", "multiprocessing", "sequential", "threading"),
    "prefer": ("processes", "threads"),
    "require": (None, "sharedmem"),
    "mmap_mode": ("r+", "r", "w+", "c"),
}
_PRE_DISPATCH = re.compile(r"all|[1-9]\d{0,6}|([1-9]\d{0,3}\s*\*\s*)?n_jobs")
_NBYTES = re.compile(r"\d{1,12}[KMG]?")


def _check_joblib_words(launcher: DictConfig) -> None:
    for key, choices in CHOICES.items():
        if key in launcher and launcher[key] not in choices:
            allowed = "one of " + ", ".join("null" if c is None else c for c in choices)
            raise ConfigError(f"hydra.launcher.{key}", launcher[key], allowed)
    if "pre_dispatch" in launcher and not _PRE_DISPATCH.fullmatch(str(launcher.pre_dispatch)):
        raise ConfigError("hydra.launcher.pre_dispatch", launcher.pre_dispatch,
                          "all, a positive integer, or n_jobs times one (e.g. 2*n_jobs)")
    nbytes = launcher.get("max_nbytes")
    if nbytes is not None and not _NBYTES.fullmatch(str(nbytes)):
        raise ConfigError("hydra.launcher.max_nbytes", nbytes,
                          "null, or a size in bytes, optionally with K, M or G (e.g. 1M)")


def _check(key: str, value: object, limit: Limit) -> None:
    if value is None and limit.nullable:
        return
    kinds = int if limit.integer else int | float
    if isinstance(value, bool) or not isinstance(value, kinds) or not (
        math.isfinite(value) and limit.low <= value <= limit.high
    ):
        raise ConfigError(f"hydra.launcher.{key}", value, limit.allowed())


def _check_n_jobs(value: object, cpus: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not (
        1 <= value <= MAX_PARALLEL_JOBS or -cpus <= value <= -1
    ):
        allowed = (f"an integer from 1 to {MAX_PARALLEL_JOBS}, or from -{cpus} to -1 "
                   f"(every CPU but |n_jobs| - 1; this machine has {cpus})")
        raise ConfigError("hydra.launcher.n_jobs", value, allowed)


def validate_launcher(launcher: DictConfig) -> None:
    """Checks every numeric setting of `hydra.launcher` that the chosen launcher has, and joblib's words.

    Raises:
        ConfigError: naming the first setting out of range, its value and the range.

    Example:
        >>> validate_launcher(compose("hydra/launcher=joblib", "hydra.launcher.n_jobs=0", ...))
        ConfigError: hydra.launcher.n_jobs must be an integer from 1 to 1024, or from -2 to -1 (...)
    """
    if "n_jobs" in launcher:
        _check_n_jobs(launcher.n_jobs, os.cpu_count() or 1)
        _check_joblib_words(launcher)
    if launcher.get("batch_size", "auto") != "auto":  # joblib: "auto" or jobs per batch
        _check("batch_size", launcher.batch_size, Limit(1, 1_000_000))
    for key, limit in LIMITS.items():
        if key in launcher:
            _check(key, launcher[key], limit)
    delay, minutes = launcher.get("signal_delay_s"), launcher.get("timeout_min")
    if delay and minutes and delay >= minutes * 60:
        raise ConfigError("hydra.launcher.signal_delay_s", delay,
                          f"below hydra.launcher.timeout_min * 60 = {minutes * 60} (else every job is "
                          "warned of its time limit as it starts)")
