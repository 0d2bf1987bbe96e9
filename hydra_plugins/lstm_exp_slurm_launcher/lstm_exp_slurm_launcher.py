"""The launcher `hydra/launcher=slurm` selects: submitit_slurm, whose wait notices lost jobs.

Hydra loads launchers only from the `hydra_plugins` package; the work is in `lstm_exp.jobs.slurm_launcher`.
Imported by Hydra at every start, so it imports nothing heavy. Its instances are pickled into each job.
"""

from typing import Any

from hydra_plugins.hydra_submitit_launcher.submitit_launcher import SlurmLauncher


class LstmExpSlurmLauncher(SlurmLauncher):
    """hydra-submitit-launcher's SlurmLauncher; `launch` returns once each job has a result or is lost.

    Args:
        lost_job_grace_s: how long a job that squeue no longer lists may take to show its result.
        poll_s: how often the result files and squeue are looked at.
        params: submitit_slurm's own keys.

    Its options, and their defaults, are `lstm_exp.config.slurm_schema.SlurmLauncherConf`.
    """

    def __init__(self, *, lost_job_grace_s: float, poll_s: float, **params: Any) -> None:
        super().__init__(**params)
        # Kept as given: `lstm_exp.config.launcher_validate` checks them before the sweep starts, and
        # names the key, which a conversion failing here could not.
        self.lost_job_grace_s = lost_job_grace_s
        self.poll_s = poll_s

    def checkpoint(self, sweep_overrides, *args: Any, **kwargs: Any) -> Any:
        """submitit's checkpointing protocol, called in the job on Slurm's warning signal (USR2,
        `signal_delay_s` before the time limit, or at a preemption): the same job again, with
        `resume=true`, so that the requeued job goes on from its run's last checkpoint."""
        import submitit

        kept = [o for o in sweep_overrides if o.split("=", 1)[0].lstrip("+~") != "resume"]
        return submitit.helpers.DelayedSubmission(self, [*kept, "resume=true"], *args, **kwargs)

    def launch(self, job_overrides, initial_job_idx: int, stopping=None) -> list:
        """Hydra's `Launcher.launch`; `stopping` (a `threading.Event`) cancels the array from another
        thread, as a search's worker needs (lstm_exp/jobs/launch_stop.py)."""
        from lstm_exp.jobs.slurm_launcher import launch

        return launch(self, job_overrides, initial_job_idx, self.lost_job_grace_s, self.poll_s, stopping)
