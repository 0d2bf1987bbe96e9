"""submitit_local sweeps that stop their jobs when the sweep is stopped: `hydra/launcher=submitit_local`.

hydra-submitit-launcher's LocalLauncher starts each job as a submitit controller process, which starts
the job's own process, and waits for their results, keeping the job handles to itself. Stopped by
Ctrl-C or SIGTERM, the sweep would exit and leave the controllers running: their jobs would finish
later and end runs the sweep had already ended KILLED. `launch` submits the jobs exactly as that
launcher does (the sweeper calls it in its place) and, when the wait is interrupted, stops every job it
started before the interrupt goes on to the sweeper, which then ends the parent and any run a job left
RUNNING:
- SIGTERM to each controller still running; it hands the signal on to its job, whose run ends KILLED,
  and exits once the job has;
- a job that does not stop within `STOP_GRACE_S` (before its run is open submitit's handler ignores
  SIGTERM) is cancelled the way submitit cancels: SIGINT to its controller, which interrupts the job and
  kills it a second later;
- a controller still running `CANCEL_TIMEOUT_S` later, or one that ignores SIGINT (a sweep started
  with SIGINT ignored, by `nohup`, `setsid ... &` from a script, cron or a CI runner, hands SIG_IGN on
  to its controllers and their jobs: the cancel would do nothing), is killed with its job and whatever
  that started (jobs/process_tree.py). Its run, left RUNNING, is ended KILLED with the parent.
A search's worker thread never sees the interrupt: it passes a `stopping` event, which the wait polls
(jobs/launch_stop.py); set, the jobs are stopped the same way and `LaunchStopped` is raised.
"""

import logging
import os
import signal
import threading
import time

from hydra.core.utils import JobReturn

from lstm_exp.jobs import process_tree
from lstm_exp.jobs.launch_stop import LaunchStopped, raise_if_stopped
from lstm_exp.jobs.submitit_array import submit_array
from lstm_exp.record.run_record import Terminated, repeats_ignored

log = logging.getLogger(__name__)
STOP_GRACE_S = 30  # for a job to end its run after SIGTERM (one store write; more on a loaded machine)
CANCEL_TIMEOUT_S = 30  # for a cancelled controller to kill its job and exit
KILL_TIMEOUT_S = 30  # for SIGKILLed processes to be gone (one in uninterruptible I/O waits for it)
POLL_S = 0.1


def launch(launcher, job_overrides, initial_job_idx: int,
           stopping: threading.Event | None = None) -> list[JobReturn]:
    """Runs the batch as hydra-submitit-launcher's `LocalLauncher.launch` does; stops it if interrupted.

    Args:
        launcher: that `LocalLauncher` (its `params` are submitit_local's keys); it is pickled into
            each job, whose `__call__` is the launcher's.
        job_overrides: each job's overrides.
        initial_job_idx: the number of the batch's first job.
        stopping: set by another thread to stop the jobs (a search's worker); None: only an interrupt.
    """
    jobs = submit_array(launcher, job_overrides, initial_job_idx, "local")
    try:
        # A search worker's thread polls its stop event (an interrupt reaches the main thread only);
        # once every job is done, their results stand even if the stop came meanwhile.
        while stopping is not None and not all(job.done() for job in jobs):
            raise_if_stopped(stopping)
            time.sleep(POLL_S)
        return [job.results()[0] for job in jobs]
    except (KeyboardInterrupt, Terminated, LaunchStopped):  # the sweep is stopped: so are its jobs
        with repeats_ignored("stopping the sweep's submitit_local jobs"):
            stop(jobs)
        raise


def stop(jobs: list) -> None:
    """Stops the jobs whose controller is still running, and waits until every controller is gone."""
    left = [job for job in jobs if not job.done()]
    if not left:
        return
    log.warning("stopping %d submitit_local job(s): SIGTERM", len(left))
    for job in left:
        # A LocalJob's id is its controller's pid; unreaped (done() reaps it), the pid is still that process.
        os.kill(int(job.job_id), signal.SIGTERM)
    left = _wait_gone(left, STOP_GRACE_S)
    deaf = [job for job in left if process_tree.ignores(int(job.job_id), signal.SIGINT)]
    cancelled = [job for job in left if job not in deaf]
    if cancelled:
        log.warning("%d submitit_local job(s) still running %d s after SIGTERM: cancelling them "
                    "(SIGINT, then SIGKILL)", len(cancelled), STOP_GRACE_S)
        for job in cancelled:
            job.cancel()
        cancelled = _wait_gone(cancelled, CANCEL_TIMEOUT_S)
    if deaf:
        log.warning("submitit_local controller(s) %s still running %d s after SIGTERM ignore SIGINT (the "
                    "sweep was started with SIGINT ignored): a cancel would do nothing; killing them "
                    "and their jobs (SIGKILL)", _pids(deaf), STOP_GRACE_S)
    if cancelled:
        log.warning("submitit_local controller(s) %s still running %d s after cancel: killing them and "
                    "their jobs (SIGKILL)", _pids(cancelled), CANCEL_TIMEOUT_S)
    if deaf or cancelled:
        _kill([*deaf, *cancelled])


def _pids(jobs: list) -> str:
    return ", ".join(job.job_id for job in jobs)


def _kill(jobs: list) -> None:
    """SIGKILLs each job's controller, its job process and what that started; waits until all are gone."""
    killed = [pid for job in jobs for pid in process_tree.kill_tree(int(job.job_id))]
    left = _wait_gone(jobs, KILL_TIMEOUT_S)  # reaps the controllers
    stray = process_tree.wait_gone(killed, KILL_TIMEOUT_S)
    if left or stray:
        log.error("submitit_local process(es) %s still running %d s after SIGKILL",
                  ", ".join(map(str, [*(int(job.job_id) for job in left), *stray])), KILL_TIMEOUT_S)


def _wait_gone(jobs: list, timeout_s: float) -> list:
    """The jobs whose controller is still running after `timeout_s` (none once all have exited)."""
    deadline = time.monotonic() + timeout_s
    while (left := [job for job in jobs if not job.done()]) and time.monotonic() < deadline:
        time.sleep(POLL_S)
    return left
