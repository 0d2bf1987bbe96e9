"""Killing a process and everything it started, for sure: the last step of stopping a launched job.

A submitit_local job is two processes: the controller (our `Popen`) and the job it started, which may
have started others (the native build's compiler, in its own process group). Signals that ask them to
stop can be ignored: a sweep started with SIGINT ignored (`nohup`, `setsid ... &` from a script, cron,
many CI runners) hands SIG_IGN on to every process it starts, so submitit's cancel (SIGINT to the
controller) does nothing, and before its run is open a job ignores SIGTERM (submitit's handler).

`kill_tree` stops the tree first (SIGSTOP, top down, until no new child appears: a stopped process
cannot start another), then SIGKILLs every member; killed bottom up, a child would be re-parented
before it was found, killed top down, a parent could fork in between. Linux only (/proc), as are the
launchers that use it.
"""

import contextlib
import os
import signal
import time
from pathlib import Path

PROC = Path("/proc")
POLL_S = 0.05


def _stat(pid: int) -> tuple[str, int] | None:
    """(state, parent pid) of `pid`, or None once it is gone."""
    try:
        # The command name in parentheses may hold spaces and parentheses: the fields follow the last ")".
        state, ppid = (PROC / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[:2]
    except (OSError, ValueError):
        return None
    return state, int(ppid)


def _children(pids: set[int]) -> set[int]:
    """The live processes whose parent is one of `pids`."""
    found = set()
    for entry in PROC.glob("[0-9]*"):
        stat = _stat(int(entry.name))
        if stat is not None and stat[0] != "Z" and stat[1] in pids:
            found.add(int(entry.name))
    return found


def alive(pid: int) -> bool:
    """Whether `pid` still runs (a zombie has exited: only its parent's wait is missing)."""
    stat = _stat(pid)
    return stat is not None and stat[0] != "Z"


def in_signal_mask(pid: int, field: str, signum: int) -> bool:
    """Whether `signum` is in the signal mask `field` (``SigIgn``, ``SigCgt``, ...) of /proc/PID/status
    (False once `pid` is gone)."""
    try:
        lines = (PROC / str(pid) / "status").read_text().splitlines()
    except OSError:
        return False
    mask = next((int(line.split()[1], 16) for line in lines if line.startswith(f"{field}:")), 0)
    return bool(mask >> (signum - 1) & 1)


def ignores(pid: int, signum: int) -> bool:
    """Whether process `pid` ignores signal `signum` (SIG_IGN; False once it is gone)."""
    return in_signal_mask(pid, "SigIgn", signum)


def kill_tree(root: int) -> list[int]:
    """SIGKILLs `root` and all its descendants; returns their pids (root first).

    `root` must be a child of this process not yet waited for, so that its pid is still that process.
    """
    tree, frontier = [root], {root}
    while frontier:
        for pid in frontier:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGSTOP)
        frontier = _children(frontier) - set(tree)
        tree += sorted(frontier)
    for pid in tree:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    return tree


def wait_gone(pids: list[int], timeout_s: float) -> list[int]:
    """The pids still running after `timeout_s` (none once all are gone; zombies count as gone)."""
    deadline = time.monotonic() + timeout_s
    while (left := [pid for pid in pids if alive(pid)]) and time.monotonic() < deadline:
        time.sleep(POLL_S)
    return left
