"""The settings of `-m hydra/sweeper=search` (`hydra.sweeper.*`), and the trial a search's job runs.

Checked once in the launching process, before the study or the parent run is touched; each refusal is a
`ConfigError` naming `hydra.sweeper.<key>` (exit 2).
"""

import re
from dataclasses import dataclass

from omegaconf import DictConfig

from lstm_exp.errors import ConfigError

PASSWORD_IN_URL = re.compile(r"://[^/@]*:[^/@]*@")
SAMPLERS = ("tpe", "random", "cmaes")
PRUNERS = ("median", "none")
# val_loss / baseline_loss is derived from the two logged metrics; the others are logged by each run.
OBJECTIVES = ("val_loss", "val_loss_ratio", "train_loss")


@dataclass(frozen=True)
class SearchSettings:
    """`hydra.sweeper.*`, checked. `study_name` and `storage` None: derived (see `jobs/study.py`)."""

    n_trials: int
    n_workers: int
    sampler: str
    pruner: str
    seed: int | None
    study_name: str | None
    storage: str | None
    metric: str  # sweep.metric, val_loss by default
    direction: str  # sweep.direction


@dataclass(frozen=True)
class TrialSpec:
    """The study trial a search's job runs (`sweep.trial`, `sweep.study`, `sweep.storage`)."""

    number: int
    study: str
    storage: str
    metric: str
    pruner: str


def _count(key: str, value, allowed: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(key, value, allowed)
    return value


def parse_settings(sweeper: DictConfig, sweep: DictConfig, trains: bool) -> SearchSettings:
    """Checks `hydra.sweeper.*` and the objective (`sweep.metric`, `sweep.direction`).

    Args:
        sweeper: the `hydra.sweeper` section.
        sweep: the `sweep` section.
        trains: whether the trials train (a task other than none): every objective needs training.
    """
    n_trials = _count("hydra.sweeper.n_trials", sweeper.n_trials, "a whole number of trials, 1 or more")
    n_workers = _count("hydra.sweeper.n_workers", sweeper.n_workers, "a whole number of workers, 1 or more")
    if sweeper.sampler not in SAMPLERS:
        raise ConfigError("hydra.sweeper.sampler", sweeper.sampler, "one of " + ", ".join(SAMPLERS))
    if sweeper.pruner not in PRUNERS:
        raise ConfigError("hydra.sweeper.pruner", sweeper.pruner, "one of " + ", ".join(PRUNERS))
    seed = sweeper.seed
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**32):
        raise ConfigError("hydra.sweeper.seed", seed, "null or an integer from 0 to 2**32-1")
    for key in ("study_name", "storage"):
        value = sweeper[key]
        if value is not None and (not isinstance(value, str) or not value.strip() or "'" in value):
            raise ConfigError(f"hydra.sweeper.{key}", value, "null or a non-empty text without quotes")
    if sweeper.storage is not None and PASSWORD_IN_URL.search(sweeper.storage):
        # The storage reaches every trial's config and the parent's tags: credentials stay out of it.
        raise ConfigError("hydra.sweeper.storage", "<a URL with a password>", "a URL without user:password@ "
                          "(PostgreSQL reads the password from PGPASSWORD or ~/.pgpass)")
    metric = sweep.metric or "val_loss"
    if metric not in OBJECTIVES:
        raise ConfigError("sweep.metric", metric, "an objective a search can use: " + ", ".join(OBJECTIVES))
    if not trains:
        raise ConfigError("task", "none", "a task to train on (task=adding, copy, flipflop or sine): "
                          "a search's objective is a training loss")
    if sweep.direction not in ("minimize", "maximize"):
        raise ConfigError("sweep.direction", sweep.direction, "minimize or maximize")
    return SearchSettings(n_trials, n_workers, sweeper.sampler, sweeper.pruner, seed, sweeper.study_name,
                          sweeper.storage, metric, sweep.direction)


def parse_trial(sweep: DictConfig) -> TrialSpec | None:
    """The trial a search's job runs, or None outside a search."""
    if sweep.trial is None:
        return None
    return TrialSpec(int(sweep.trial), str(sweep.study), str(sweep.storage), sweep.metric or "val_loss",
                     sweep.pruner or "median")


def check_sampler_fits(sampler: str, space: dict) -> None:
    """Refuses `cmaes` for a space with no float or int interval.

    CMA-ES samples only the space's intervals (`interval(...)`, `range(...)`); Optuna hands every
    categorical parameter to its independent sampler (random). With no interval at all, a cmaes search
    would be a random search under another name.
    """
    from optuna.distributions import FloatDistribution, IntDistribution

    if sampler == "cmaes" and not any(isinstance(d, (FloatDistribution, IntDistribution))
                                      for d in space.values()):
        raise ConfigError("hydra.sweeper.sampler", sampler, "tpe or random for a space of choices only "
                          "(CMA-ES samples float and int intervals: interval(...) or range(...); this "
                          f"space has none: {', '.join(sorted(space))})")
