"""A joblib (loky) worker ends when the sweep or search that started it is gone.

A sweep's launching process that is SIGKILLed (`kill -9`, the OOM killer, a lost session) cannot stop
its workers. loky's workers wait for work on a queue whose ends every worker also holds, so they never
see the parent go: an idle one ends only after loky's idle timeout (300 s under joblib, then a 30 s
wait for a lock the dead parent never releases: gone 330-340 s after the kill, measured), and a busy
one runs its job to the end, writing to a run whose sweep is gone.

`watched_job` wraps each sweep job; in a loky worker, the first call starts a thread that polls the
worker's parent pid. When it changes (the parent died; the worker was re-parented to init or a
subreaper), a job in progress gets SIGTERM and ends its run KILLED as on any SIGTERM
(record/run_record.py); once it has left `watched_job` (or after `JOB_END_GRACE_S`), or at once when
the worker is idle, the worker exits 143. A job that would start after that exits before it opens a run.
A worker that never ran a job has no watcher: it ends at loky's idle timeout, having nothing to stop.

Why not prctl(PR_SET_PDEATHSIG): the signal fires when the *thread* that forked the worker ends, and
loky forks workers from whichever thread submits (a search's worker threads each launch their trials)
or from its own manager thread, each of which may end long before the sweep does.
"""

import contextlib
import functools
import logging
import multiprocessing
import os
import signal
import threading
import time

log = logging.getLogger(__name__)
POLL_S = 1.0  # how soon a worker notices its parent is gone (one getppid() a second)
JOB_END_GRACE_S = 30  # for a job to end its run after the SIGTERM (one store write; more under load)
ORPHANED_EXIT = 143  # as a SIGTERMed run's


def watched_job():
    """A context for one sweep job: in a loky worker, the worker's watcher's; elsewhere nothing.

    Elsewhere the job's parent is not the sweep's pool: Hydra's basic launcher runs it in the launching
    process itself, submitit and Slurm in a controller or step daemon that a stop kills or cancels.
    """
    if not multiprocessing.current_process().name.startswith("LokyProcess"):
        return contextlib.nullcontext()
    return _watcher().job()


@functools.cache  # one watcher per worker, however many jobs it runs
def _watcher() -> "_OrphanWatch":
    watch = _OrphanWatch(os.getppid())
    threading.Thread(target=watch.run, name="orphan-watch", daemon=True).start()
    return watch


class _OrphanWatch:
    """The watcher thread's state: the parent to outlive, whether a job is in progress."""

    def __init__(self, parent: int) -> None:
        self.parent = parent
        self.lock = threading.Lock()
        self.idle = threading.Event()
        self.idle.set()
        self.orphaned = False

    @contextlib.contextmanager
    def job(self):
        with self.lock:
            if self.orphaned:  # a job queued before the parent died: nothing of it has started
                os._exit(ORPHANED_EXIT)
            self.idle.clear()
        try:
            yield
        finally:
            self.idle.set()

    def run(self) -> None:
        while os.getppid() == self.parent:
            time.sleep(POLL_S)
        with self.lock:
            self.orphaned = True
            busy = not self.idle.is_set()
        log.warning("the sweep's process %d is gone: worker %d %s", self.parent, os.getpid(),
                    "stops its job (SIGTERM) and exits" if busy else "exits")
        if busy:
            os.kill(os.getpid(), signal.SIGTERM)  # the job's run ends KILLED
            if not self.idle.wait(JOB_END_GRACE_S):
                log.error("worker %d: its job did not end within %d s of SIGTERM", os.getpid(),
                          JOB_END_GRACE_S)
        os._exit(ORPHANED_EXIT)  # loky's loop would wait for work that can no longer come
