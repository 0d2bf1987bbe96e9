"""A Slurm job's requeue held until its training's next checkpoint is in the run.

submitit answers Slurm's warning (USR2, `signal_delay_s` before the time limit, or at a preemption)
at once: it calls the launcher's `checkpoint`, requeues the job and exits. Slurm checks its jobs'
limits only every 30 s, so the warning comes up to 30 s earlier than asked; with a short limit an
attempt would be stopped before its first epoch was saved, and a requeued training would never get
further. So in a training job the warning is held: the requeue happens right after the next
checkpoint is logged, or at the latest `MARGIN_S` before the job's end time as squeue gives it
(what the requeue itself and ending the run need), whichever comes first.
"""

import logging
import os
import signal
import subprocess
import time
from datetime import datetime

log = logging.getLogger(__name__)
MARGIN_S = 10  # before the time limit: submitit's checkpoint pickle, `scontrol requeue`, ending the run
SQUEUE_TIMEOUT_S = 5


class HeldRequeue:
    """Holds submitit's USR2 handler until `after_checkpoint` or until the margin before the limit.

    Use `HeldRequeue.install()` in the job's main thread; None where the job is not a submitit Slurm
    job. `uninstall` puts submitit's handler back.
    """

    def __init__(self, requeue) -> None:
        self._requeue = requeue  # submitit's handler: checkpoint(), scontrol requeue, SystemExit
        self._signal: tuple | None = None  # (signum, frame) of the warning being held

    @classmethod
    def install(cls) -> "HeldRequeue | None":
        if os.environ.get("SUBMITIT_EXECUTOR") != "slurm":
            return None
        handler = signal.getsignal(signal.SIGUSR2)
        if not callable(handler):  # no submitit handler to hold (not its job process)
            return None
        held = cls(handler)
        signal.signal(signal.SIGUSR2, held._hold)
        return held

    def uninstall(self) -> None:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGUSR2, self._requeue)

    def _hold(self, signum, frame) -> None:
        self._signal = (signum, frame)
        left = _seconds_left() - MARGIN_S
        log.warning("Slurm's warning (%s): the job is requeued after its next checkpoint, or in %.0f s",
                    signal.Signals(signum).name, max(left, 0))
        if left <= 0:
            self._requeue_now()
            return
        signal.signal(signal.SIGALRM, lambda *_: self._requeue_now())
        signal.setitimer(signal.ITIMER_REAL, left)

    def after_checkpoint(self) -> None:
        """Requeues now if Slurm's warning came: the checkpoint just logged is where the job goes on."""
        if self._signal is not None:
            self._requeue_now()

    def _requeue_now(self) -> None:
        signal.setitimer(signal.ITIMER_REAL, 0)
        self._requeue(*self._signal)  # raises SystemExit once the job is requeued


def _seconds_left() -> float:
    """Seconds until the job's end time (squeue's %e); 0 when squeue does not say."""
    try:
        proc = subprocess.run(["squeue", "-h", "-j", os.environ.get("SLURM_JOB_ID", ""), "-o", "%e"],
                              capture_output=True, text=True, timeout=SQUEUE_TIMEOUT_S)
        end = datetime.fromisoformat(proc.stdout.strip())
    except (OSError, subprocess.SubprocessError, ValueError) as error:
        log.warning("the job's end time is unknown (%s): requeued now", error)
        return 0.0
    return end.timestamp() - time.time()
