"""Ending a run only while it is RUNNING: a run's terminal status, once set, is never overwritten.

Several processes may end the same run: the job that owns it (FINISHED, FAILED, KILLED), the recorder
when the job's process vanished, and a sweep's parent, which ends the child runs its jobs left RUNNING.
MLflow has no compare-and-set, so every end re-reads the run's status right before it writes and
writes nothing when the run has ended already. On a SQLite store the read and the write happen under
an exclusive lock on the file beside the database that `store.open_experiment` also locks, so among
the lstm_exp processes of the machine (SQLite serves one machine) check-and-end is atomic. On a server
the window left is the one round trip between the read and `set_terminated`; a stopped sweep narrows it
further by ending its children only once the jobs it launched are gone.
"""

import logging

from lstm_exp.record.store import TAG_PREFIX
from lstm_exp.record.store_locks import retry_locked, sqlite_file_lock

log = logging.getLogger(__name__)
LOCK_TIMEOUT_S = 60  # the lock is held for one read and one write; a holder that dies releases it


class RunEnded(RuntimeError):
    """Another process ended the run (a stopped sweep, say): nothing more is written to it."""


def run_status(client, run_id: str) -> str:
    """The run's status as the store holds it now: RUNNING, FINISHED, FAILED or KILLED."""
    return retry_locked(lambda: client.get_run(run_id)).info.status


def check_running(client, run_id: str) -> None:
    """Raises `RunEnded` when the run is no longer RUNNING, before more is logged to it."""
    status = run_status(client, run_id)
    if status != "RUNNING":
        raise RunEnded(f"run {run_id} was ended {status} by another process; nothing more is logged to it")


def end_if_running(client, uri: str, run_id: str, status: str, reason: str | None = None) -> str:
    """Ends the run with `status` (and `reason` in the `lstm_exp.error` tag) if it is still RUNNING.

    Returns:
        The run's status afterwards: `status`, or the one another process set first, which stays.
    """
    with sqlite_file_lock(uri, LOCK_TIMEOUT_S):
        current = run_status(client, run_id)
        if current != "RUNNING":
            log.warning("run %s had already ended %s; it stays so (not ended %s)", run_id, current, status)
            return current
        retry_locked(lambda: client.set_terminated(run_id, status))
    if reason:  # the run is ours to describe: whoever finds it ended writes nothing
        retry_locked(lambda: client.set_tag(run_id, TAG_PREFIX + "error", reason[:5000]))
    return status
