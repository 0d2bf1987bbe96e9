"""Shared fixtures: the real composed config, the real CLI in a subprocess, a temporary MLflow store."""

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import lstm_exp

REPO = Path(__file__).resolve().parents[1]
CLI_TIMEOUT = 300  # s: one CLI run, TensorFlow import included, on a busy 2-core machine


def compose(*overrides: str):
    """The real config (conf/), with tracking off unless a test turns it on."""
    return lstm_exp.compose("tracking.enabled=false", *overrides)


@pytest.fixture
def store(tmp_path):
    """A fresh SQLite store in a temporary launch directory: (directory, tracking URI)."""
    return tmp_path, f"sqlite:///{tmp_path / 'mlflow.db'}"


def run_cli(*args: str, cwd: Path, module: str = "lstm_exp.run", env: dict | None = None,
            timeout: float = CLI_TIMEOUT) -> subprocess.CompletedProcess:
    """Runs `python -m <module> args` as a user would, from `cwd`."""
    full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    full_env.pop("MLFLOW_TRACKING_URI", None)
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=cwd, capture_output=True, text=True, timeout=timeout, env=full_env,
    )


def error_lines(proc: subprocess.CompletedProcess) -> list[str]:
    """The non-empty lines a failed run printed on stderr."""
    return [line for line in proc.stderr.splitlines() if line.strip()]


# Every process the suite starts inherits this mark, daemons that re-parent themselves included; at the
# end, any process still carrying it was leaked by a test, and fails the session.
SESSION_MARK = "LSTM_EXP_TEST_SESSION"
LEAK_GRACE_S = 15  # processes that are already exiting get this long to go


def marked_processes(mark: bytes) -> list[tuple[int, str]]:
    found = []
    for entry in Path("/proc").glob("[0-9]*"):
        pid = int(entry.name)
        if pid == os.getpid():
            continue
        try:
            if mark not in (entry / "environ").read_bytes().split(b"\0"):
                continue
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if state != "Z":
            found.append((pid, command[:160]))
    return found


def pytest_sessionstart(session):
    os.environ[SESSION_MARK] = f"{os.getpid()}-{time.time_ns()}"


def pytest_sessionfinish(session, exitstatus):
    mark = f"{SESSION_MARK}={os.environ.get(SESSION_MARK, '')}".encode()
    deadline = time.monotonic() + LEAK_GRACE_S
    while (left := marked_processes(mark)) and time.monotonic() < deadline:
        time.sleep(0.5)
    if left:
        lines = "\n".join(f"  pid {pid}: {command}" for pid, command in left)
        print(f"\nthe test session leaked {len(left)} process(es); killing them:\n{lines}", file=sys.stderr)
        for pid, _ in left:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        session.exitstatus = 1
