"""A launch told to stop from another thread: how a multi-worker search stops its workers' jobs.

Ctrl-C and SIGTERM reach the main thread only. A search's worker threads each wait in their own launch
(jobs/search.py), so the main thread cannot interrupt them; it sets a `threading.Event` instead, and the
launchers that own their job handles (submitit_local, Slurm) look at it while they wait: set, they stop
or cancel their jobs exactly as they do on an interrupt, then raise `LaunchStopped`.
"""

import threading


class LaunchStopped(Exception):
    """The launch's jobs were stopped because its `stopping` event was set."""


def raise_if_stopped(stopping: threading.Event | None) -> None:
    """Raises `LaunchStopped` once `stopping` is set (None: a launch nobody stops from outside)."""
    if stopping is not None and stopping.is_set():
        raise LaunchStopped("the search was stopped")
