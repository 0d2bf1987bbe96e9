"""`hydra/launcher=slurm`: hydra-submitit-launcher's `submitit_slurm` keys with our defaults, our launcher
class and our two keys, as a dataclass in Hydra's ConfigStore (as Hydra's own launcher plugins do).

Registered by `schema.register()`, which runs before every composition (the command line, `compose`):
Hydra's plugin scan cannot see our `hydra_plugins` modules in a setuptools editable install, so an entry
made only when that scan imports them would be missing there.
"""

from dataclasses import dataclass
from typing import Any

from hydra.core.config_store import ConfigStore
from hydra_plugins.hydra_submitit_launcher.config import SlurmQueueConf


@dataclass
class SlurmLauncherConf(SlurmQueueConf):
    """Sweeps on a Slurm cluster: submitit_slurm, whose wait also notices a job that left the queue
    without a result (cancelled, killed, out of time), even on a cluster without accounting, where
    submitit alone would wait forever. Use: `-m hydra/launcher=slurm ...`.

    The inherited keys users set most:
        submitit_folder: where submitit writes each job's pickles and logs; must be on a filesystem the
            nodes share. Default `${hydra.sweep.dir}/.submitit/%j`.
        partition: the Slurm partition (None: the cluster's default one).
        timeout_min: each job's wall-clock limit in minutes (60); Slurm stops a job that runs longer.
        cpus_per_task: CPUs for each job (TensorFlow uses them all); None: Slurm's default (one).
        mem_gb: memory for each job in GB; None: Slurm's default (on some clusters, the whole node).
        array_parallelism: at most this many jobs of the sweep at the same time (`--array=...%N`), 256.
        name: the job name squeue shows (`${hydra.job.name}`).
        additional_parameters: other sbatch options, e.g. {mail-user: me@example.org, mail-type: END}.
        setup: commands run in the job script before the job, e.g.
            ["source /shared/lstm_exp/.venv/bin/activate"].
    """

    # Ours: submitit_slurm's job array, waited for without sacct (lstm_exp.jobs.slurm_launcher).
    _target_: str = "hydra_plugins.lstm_exp_slurm_launcher.lstm_exp_slurm_launcher.LstmExpSlurmLauncher"
    # submitit asks Slurm for USR2 this long before the time limit (Slurm sends it up to 30 s earlier
    # still): the job is requeued (below; a training first logs its next checkpoint) and its run ends
    # FAILED or KILLED. 0: no warning; the job runs to its limit, where Slurm stops it (SIGTERM: the
    # run ends KILLED) and the sweep reports it TIMEOUT. Keep it under timeout_min * 60 - 30, or every
    # job gets the warning as it starts.
    signal_delay_s: int = 0
    # Requeues after a time-out warning (submitit's checkpointing protocol): the requeued job runs with
    # resume=true and a training goes on from its last checkpoint in a new run (tagged
    # lstm_exp.continued_from and lstm_exp.requeues). Past this many the job fails "timed-out too many
    # times". A preemption's USR2 requeues too, and is not counted (submitit's rule).
    max_num_timeout: int = 3

    # lstm_exp's own two keys. Typed Any, so kept as given: `launcher_validate` refuses a bad value in
    # one line naming the key and its range, which OmegaConf's conversion error would not.
    #
    # A job that squeue no longer lists and that left no result after this many seconds (time for a
    # shared filesystem to show the result file) is reported failed.
    lost_job_grace_s: Any = 60
    # How often the launcher looks at the result files and at squeue, in seconds.
    poll_s: Any = 5


def register() -> None:
    """Registers `SlurmLauncherConf` as the option `slurm` of Hydra's `hydra/launcher` group."""
    ConfigStore.instance().store(group="hydra/launcher", name="slurm", node=SlurmLauncherConf,
                                 provider="lstm_exp")
