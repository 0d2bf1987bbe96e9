"""A sweep's batch submitted as one submitit job array, as hydra-submitit-launcher submits it.

Our two submitit launchers (submitit_local's stop, lstm_exp's Slurm wait) keep the job handles that
the plugin keeps to itself, so that a stopped sweep can stop its jobs; the submission is the same for
both and lives here.
"""

import logging
from pathlib import Path

from omegaconf import OmegaConf

log = logging.getLogger(__name__)


def submit_array(launcher, job_overrides, initial_job_idx: int, cluster: str, **executor_options) -> list:
    """Submits the batch; returns submitit's job handles, one per job, in order.

    Args:
        launcher: the hydra-submitit-launcher launcher (its `params` are the `cluster`'s keys); it is
            pickled into each job, whose `__call__` is the launcher's.
        job_overrides: each job's overrides.
        initial_job_idx: the number of the batch's first job.
        cluster: submitit's cluster name, `local` or `slurm` (also the prefix of its own keys).
        executor_options: further arguments of `submitit.AutoExecutor`.
    """
    import submitit
    from hydra.core.singleton import Singleton
    from hydra.core.utils import filter_overrides
    from hydra_plugins.hydra_submitit_launcher.config import BaseQueueConf

    params = dict(launcher.params)
    executor = submitit.AutoExecutor(cluster=cluster, folder=params.pop("submitit_folder"),
                                     **executor_options)
    queue_keys = set(OmegaConf.structured(BaseQueueConf).keys())
    executor.update_parameters(**{k if k in queue_keys else f"{cluster}_{k}": v
                                  for k, v in params.items() if f"{cluster}_{k}" not in executor_options})
    sweep = launcher.config.hydra.sweep
    Path(str(sweep.dir)).mkdir(parents=True, exist_ok=True)
    if "mode" in sweep:
        Path(str(sweep.dir)).chmod(int(str(sweep.mode), 8))
    log.info("submitit '%s' sweep output dir: %s", cluster, sweep.dir)
    overrides = [list(o) for o in job_overrides]
    numbers = [initial_job_idx + i for i in range(len(overrides))]
    for number, job in zip(numbers, overrides, strict=True):
        log.info("\t#%d : %s", number, " ".join(filter_overrides(job)))
    count = len(numbers)
    return executor.map_array(launcher, overrides, ["hydra.sweep.dir"] * count, numbers,
                              [f"job_id_for_{n}" for n in numbers], [Singleton.get_state()] * count)
