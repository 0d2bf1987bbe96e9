"""Sweeps on Slurm that never wait forever: the launch behind `hydra/launcher=slurm`.

hydra-submitit-launcher submits a job array and waits in `job.results()`, and submitit learns that a
job ended from `sacct`. On a cluster without accounting it never does, and a job cancelled, killed or
stopped at its time limit leaves no result: the sweep would wait forever. `launch` submits the same job
array, then watches only each job's result file and `squeue`. A job whose result came back is done; a
job that squeue no longer lists and whose result has not appeared `lost_job_grace_s` later is lost. A
lost job, and one whose result is an error raised past our task function (a signal, say), comes back as
a FAILED JobReturn whose error says why; the sweeper (lstm_exp.jobs.sweep) counts it in the summary and
the exit status and ends the job's run if the job left it open. A job that submitit requeued (Slurm's
time-limit warning or a preemption, `max_num_timeout`; see jobs/slurm_requeue.py) keeps its id and stays
in squeue (PENDING, reason BeginTime, until it starts again), so it is waited for like any queued job.
A search's worker thread never sees an interrupt: its `stopping` event (jobs/launch_stop.py), looked at
on every poll, cancels the array the same way and raises `LaunchStopped`.

The plugin class Hydra instantiates is hydra_plugins/lstm_exp_slurm_launcher (Hydra takes launchers
from that package only); its knobs are in lstm_exp/config/slurm_schema.py. The plugin's own
`hydra/launcher=submitit_slurm` goes through `launch` too (lstm_exp.jobs.sweep), with the default grace
and poll: its launch keeps the job handles to itself, so a stopped sweep could not cancel its jobs.
"""

import getpass
import logging
import subprocess
import threading
import time
from collections import Counter
from pathlib import Path

from hydra.core.utils import JobReturn, JobStatus
from omegaconf import OmegaConf, open_dict

from lstm_exp.config.slurm_schema import SlurmLauncherConf
from lstm_exp.jobs.launch_stop import LaunchStopped, raise_if_stopped
from lstm_exp.jobs.submitit_array import submit_array
from lstm_exp.record.run_record import Terminated, repeats_ignored

log = logging.getLogger(__name__)
COMMAND_TIMEOUT_S = 60  # one squeue / scontrol / scancel call
CANCEL_TIMEOUT_S = 180  # after scancel, until squeue no longer lists the jobs (Slurm's KillWait is 30 s)
LOST_JOB_GRACE_S = SlurmLauncherConf.lost_job_grace_s  # for submitit_slurm, which has no such key
POLL_S = SlurmLauncherConf.poll_s  # likewise
QUEUE_SILENCE_S = 900  # squeue failing this long (the controller is down) makes every unfinished job lost
LOST = "left the queue without a result: cancelled, killed, or out of time"


class SlurmJobError(RuntimeError):
    """A sweep's job that Slurm ended without a result from our task."""


def launch(launcher, job_overrides, initial_job_idx: int, lost_job_grace_s: float = LOST_JOB_GRACE_S,
           poll_s: float = POLL_S, stopping: threading.Event | None = None) -> list[JobReturn]:
    """Submits the batch as one job array, as submitit_slurm does, and waits for it without sacct.

    Args:
        launcher: the `LstmExpSlurmLauncher`, or submitit_slurm's own `SlurmLauncher` (its `params`
            are submitit_slurm's keys); it is pickled into each job, whose `__call__` is submitit_slurm's.
        job_overrides: each job's overrides.
        initial_job_idx: the number of the batch's first job.
        lost_job_grace_s: how long a job that squeue no longer lists may take to show its result.
        poll_s: how often the result files and squeue are looked at.
        stopping: set by another thread to cancel the array (a search's worker); None: only an interrupt.
    """
    jobs = submit_array(launcher, job_overrides, initial_job_idx, "slurm",
                        slurm_max_num_timeout=launcher.params["max_num_timeout"])
    overrides = [list(o) for o in job_overrides]
    numbers = [initial_job_idx + i for i in range(len(overrides))]
    try:
        return _wait(launcher, jobs, overrides, numbers, lost_job_grace_s, poll_s, stopping)
    except (KeyboardInterrupt, Terminated, LaunchStopped):  # the sweep is stopped: so are its jobs
        with repeats_ignored("cancelling the sweep's Slurm job array"):
            _cancel(jobs)
        raise


def _cancel(jobs: list) -> None:
    """Cancels the job array (`scancel`), then waits until squeue lists none of its jobs.

    Slurm sends each running job SIGTERM (its run ends KILLED) and SIGKILL `KillWait` seconds later;
    the sweeper ends what is left RUNNING only once the jobs are out of the queue.
    """
    arrays = sorted({job.job_id.split("_")[0] for job in jobs})
    log.warning("Slurm sweep stopped: cancelling job array %s", " ".join(arrays))
    subprocess.run(["scancel", *arrays], capture_output=True, timeout=COMMAND_TIMEOUT_S, check=False)
    ours = {job.job_id for job in jobs}
    deadline = time.monotonic() + CANCEL_TIMEOUT_S
    while time.monotonic() < deadline:
        queued = _queued()
        if queued is not None and not ours & queued:
            return
        time.sleep(1)
    log.error("Slurm jobs of array %s still in the queue %d s after scancel", " ".join(arrays),
              CANCEL_TIMEOUT_S)


def _wait(launcher, jobs: list, overrides: list[list[str]], numbers: list[int], lost_job_grace_s: float,
          poll_s: float, stopping: threading.Event | None) -> list[JobReturn]:
    """Each job's JobReturn, once every job has a result or is lost; logs a line when the counts change."""
    returns: dict[int, JobReturn] = {}
    left_queue: dict[int, float] = {}  # job index -> when squeue first did not list it
    last_answer = time.monotonic()
    progress = None
    while True:
        raise_if_stopped(stopping)
        queued = _queued()
        now = time.monotonic()
        if queued is not None:
            last_answer = now
        for i, job in enumerate(jobs):
            if i in returns:
                continue
            if job.paths.result_pickle.exists():
                returns[i] = _returned(launcher, job, overrides[i], numbers[i])
            elif queued is not None and job.job_id not in queued:
                left_queue.setdefault(i, now)
                if now - left_queue[i] >= lost_job_grace_s:
                    returns[i] = _failed(launcher, job, overrides[i], numbers[i],
                                         f"{LOST} (Slurm: {_slurm_state(job)})")
            elif now - last_answer > QUEUE_SILENCE_S:
                returns[i] = _failed(launcher, job, overrides[i], numbers[i],
                                     f"is in an unknown state: squeue did not answer for {QUEUE_SILENCE_S} s")
            else:
                left_queue.pop(i, None)
        counts = Counter("in the queue" if queued is None or job.job_id in queued else "leaving the queue"
                         for i, job in enumerate(jobs) if i not in returns)
        counts["done"] = len(returns)
        if counts != progress:
            progress = counts
            log.info("Slurm sweep: %s", ", ".join(f"{n} {what}" for what, n in sorted(counts.items())))
        if len(returns) == len(jobs):
            return [returns[i] for i in range(len(jobs))]
        _sleep(poll_s, stopping)


def _sleep(seconds: float, stopping: threading.Event | None) -> None:
    """A poll's pause, cut short when `stopping` is set."""
    if stopping is None:
        time.sleep(seconds)
    else:
        stopping.wait(seconds)


def _queued() -> set[str] | None:
    """Ids (`123_4` for array tasks) of this user's jobs that squeue lists; None if it did not answer."""
    try:
        proc = subprocess.run(["squeue", "-h", "-r", "-o", "%i", "-u", getpass.getuser()],
                              capture_output=True, text=True, timeout=COMMAND_TIMEOUT_S)
    except (OSError, subprocess.SubprocessError) as error:
        log.warning("squeue failed: %s", error)
        return None
    if proc.returncode != 0:
        log.warning("squeue failed (exit %d): %s", proc.returncode, proc.stderr.strip())
        return None
    return set(proc.stdout.split())


def _returned(launcher, job, overrides: list[str], number: int) -> JobReturn:
    """The job's own JobReturn, or its failure if what came back is an error raised past the task."""
    try:
        return job.results()[0]
    except Exception as error:  # noqa: BLE001 - submitit's FailedJobError carries the job's trace
        lines = [line.strip() for line in str(error).splitlines() if line.strip() and line[0] != "-"]
        cause = next((line for line in reversed(lines) if "Error" in line or "Interrupt" in line
                      or "Terminated" in line), lines[0] if lines else type(error).__name__)
        return _failed(launcher, job, overrides, number, f"ended without a result: {cause}")


def _failed(launcher, job, overrides: list[str], number: int, reason: str) -> JobReturn:
    """The job's JobReturn, FAILED with `reason`: the sweeper reports it and ends its run, if open."""
    sweep_config = launcher.hydra_context.config_loader.load_sweep_config(launcher.config, overrides)
    with open_dict(sweep_config.hydra.job):
        sweep_config.hydra.job.num = number
        sweep_config.hydra.job.id = job.job_id
    output_dir = Path(str(sweep_config.hydra.sweep.dir)) / str(sweep_config.hydra.sweep.subdir)
    task_cfg = OmegaConf.masked_copy(sweep_config, [k for k in sweep_config if k != "hydra"])
    return JobReturn(overrides=overrides, cfg=task_cfg, hydra_cfg=sweep_config, working_dir=str(output_dir),
                     task_name=str(sweep_config.hydra.job.name), status=JobStatus.FAILED,
                     _return_value=SlurmJobError(f"Slurm job {job.job_id} {reason}"))


def _slurm_state(job) -> str:
    """What Slurm still knows of a job that left the queue: scontrol's state and reason, else sacct's."""
    try:
        proc = subprocess.run(["scontrol", "show", "job", "-o", job.job_id], capture_output=True, text=True,
                              timeout=COMMAND_TIMEOUT_S)
        fields = dict(f.split("=", 1) for f in proc.stdout.split() if "=" in f)
        if proc.returncode == 0 and "JobState" in fields:
            return f"{fields['JobState']}, reason {fields.get('Reason', 'None')}"
        state = job.get_info(mode="force").get("State")  # sacct: nothing without accounting
    except (OSError, subprocess.SubprocessError, ValueError) as error:
        return f"state unknown: {error}"
    return state or "no record of the job left"
