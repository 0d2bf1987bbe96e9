"""The CLI started in the background and watched through its SQLite store, for tests that stop, kill
or release a run while it is open (test_faults, test_recorder, test_stopping).
"""

import contextlib
import os
import signal
import sqlite3
import subprocess
import sys
import time

from faults import on_python_path


def statuses(db) -> list[str]:
    """The status of every run in the SQLite store `db`, read-only."""
    with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1)) as con:
        return [status for (status,) in con.execute("SELECT status FROM runs")]


def start_cli(*args: str, cwd, env: dict | None = None, sigint=signal.SIG_DFL) -> subprocess.Popen:
    """The CLI in the background, in its own process group; output to files (a full pipe would block).

    `sigint`: SIGINT's disposition in the CLI's process (and, inherited, in all it starts): Ctrl-C's
    default whatever this test process was started with (a suite launched with SIGINT ignored hands
    SIG_IGN on, and Python then installs no KeyboardInterrupt handler), or `signal.SIG_IGN` to start it
    as `nohup`, `setsid ... &` from a script, cron or a CI runner would.
    """
    env = {**{k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}, **(env or {})}
    env = on_python_path(env)  # its jobs can import `faults`
    with (cwd / "stdout.txt").open("w") as out, (cwd / "stderr.txt").open("w") as err:
        return subprocess.Popen([sys.executable, "-m", "lstm_exp.run", *args], cwd=cwd, env=env,
                                stdout=out, stderr=err, start_new_session=True,
                                preexec_fn=lambda: signal.signal(signal.SIGINT, sigint))


def wait_running(proc: subprocess.Popen, db, count: int, timeout: float = 120) -> None:
    """Until `count` runs of the store are RUNNING, the process ends or `timeout` passes."""
    deadline = time.monotonic() + timeout
    while proc.poll() is None and time.monotonic() < deadline:
        try:
            if statuses(db).count("RUNNING") == count:
                return
        except sqlite3.Error:  # not created yet, or mid-migration
            pass
        time.sleep(0.1)


def finish(proc: subprocess.Popen, cwd, timeout: float) -> tuple[str, str]:
    """Waits for the process, killing its group past `timeout`; returns (stdout, stderr)."""
    try:
        proc.wait(timeout=timeout)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    return (cwd / "stdout.txt").read_text(), (cwd / "stderr.txt").read_text()
