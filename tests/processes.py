"""The one reader of /proc in the tests: live processes by environment mark, command line, parent or
process group, the processes that hold a file open, the signals a process ignores or catches (its
masks read as the launcher's stop reads them, `jobs/process_tree.py`), and what a thread
of this process waits in.

Zombies are left out everywhere: they have exited, only their parent's wait is missing. The calling
process is left out too, so that a test can look for what it started.
"""

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from lstm_exp.jobs.process_tree import in_signal_mask

PROC = Path("/proc")


@dataclass(frozen=True)
class Process:
    """One live process: its id, its parent's, its process group's and its command line, space-joined."""

    pid: int
    ppid: int
    pgid: int
    command: str


def _read(entry: Path) -> Process | None:
    """The process of /proc/PID `entry`, or None once it has exited or is a zombie."""
    try:
        # The command name in parentheses may hold spaces and parentheses: the fields follow the last ")".
        state, ppid, pgid = (entry / "stat").read_text().rsplit(")", 1)[1].split()[:3]
        command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
    except (OSError, ValueError):
        return None
    return None if state == "Z" else Process(int(entry.name), int(ppid), int(pgid), command)


def _entries() -> Iterator[Path]:
    own = str(os.getpid())
    return (entry for entry in PROC.glob("[0-9]*") if entry.name != own)


def live() -> list[Process]:
    """Every live process but this one."""
    return [p for entry in _entries() if (p := _read(entry)) is not None]


def with_environment(*entries: str) -> list[Process]:
    """Live processes whose environment holds any of `entries` (each exactly `NAME=value`)."""
    wanted = {entry.encode() for entry in entries}
    found = []
    for entry in _entries():
        try:
            environment = set((entry / "environ").read_bytes().split(b"\0"))
        except OSError:  # gone, or another user's
            continue
        if wanted & environment and (process := _read(entry)) is not None:
            found.append(process)
    return found


def with_command(text: str) -> list[Process]:
    """Live processes whose command line (arguments joined by spaces) contains `text`."""
    return [p for p in live() if text in p.command]


def children(pid: int, command: str = "") -> list[Process]:
    """Live processes whose parent is `pid`, and whose command line contains `command` when given."""
    return [p for p in live() if p.ppid == pid and command in p.command]


def group_members(pgid: int) -> list[int]:
    """The pids of the live members of process group `pgid`."""
    return [p.pid for p in live() if p.pgid == pgid]


def holding_open(path: Path) -> list[int]:
    """The pids of processes other than this one with `path` open (readable ones: this user's)."""
    found = []
    for entry in _entries():
        with contextlib.suppress(OSError):
            if any(os.readlink(fd) == str(path) for fd in (entry / "fd").iterdir()):
                found.append(int(entry.name))
    return found


def ignores(pid: int, signum: int) -> bool:
    """Whether process `pid` ignores signal `signum` (SIG_IGN)."""
    return in_signal_mask(pid, "SigIgn", signum)


def catches(pid: int, signum: int) -> bool:
    """Whether process `pid` has a handler for signal `signum` (in Python: any handler set by a module)."""
    return in_signal_mask(pid, "SigCgt", signum)


def wait_channel(tid: int) -> str:
    """The kernel function that thread `tid` of this process sleeps in ("0" while it runs)."""
    return (PROC / "self" / "task" / str(tid) / "wchan").read_text()
