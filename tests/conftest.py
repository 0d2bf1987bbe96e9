"""Shared fixtures: the real composed config, the real CLI in a subprocess or in this process, a temporary
MLflow store."""

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import processes
import pytest
from faults import on_python_path

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


@pytest.fixture(scope="session")
def stacked_run_original(tmp_path_factory):
    """The session's one recorded `model=stacked` run (tests/recorded_run.py); tests take copies of it."""
    from recorded_run import STACKED, record  # here, not at the top: recorded_run imports run_cli from here

    return record(tmp_path_factory.mktemp("stacked-run"), *STACKED)


@pytest.fixture
def stacked_run(stacked_run_original, tmp_path):
    """This test's own copy of the session's recorded run, free to read, write or alter."""
    from recorded_run import copy_run

    return copy_run(stacked_run_original, tmp_path / "recorded")


def run_cli(*args: str, cwd: Path, module: str = "lstm_exp.run", env: dict | None = None,
            timeout: float = CLI_TIMEOUT) -> subprocess.CompletedProcess:
    """Runs `python -m <module> args` as a user would, from `cwd` (its jobs can import `faults`)."""
    full_env = on_python_path({**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})})
    full_env.pop("MLFLOW_TRACKING_URI", None)
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=cwd, capture_output=True, text=True, timeout=timeout, env=full_env,
    )


def error_lines(proc: subprocess.CompletedProcess) -> list[str]:
    """The non-empty lines a failed run printed on stderr."""
    return [line for line in proc.stderr.splitlines() if line.strip()]


def run_in_process(args: list[str], monkeypatch, capsys) -> tuple[int, str]:
    """`lstm_exp.cli.run.main()` in this process with `sys.argv` patched: (exit status, stderr).

    Milliseconds per call where the CLI would take seconds; for cases refused before any computation.
    """
    from lstm_exp.cli import run

    # Hydra's logging.config.dictConfig would close every existing handler, absl's too (TensorFlow,
    # imported by other test modules), and with it the stream pytest captured when absl was imported.
    logging_off = ["hydra/job_logging=none", "hydra/hydra_logging=none"]
    monkeypatch.setattr(sys, "argv", ["lstm-exp", *args, *logging_off])
    monkeypatch.setenv("HYDRA_FULL_ERROR", "1")  # main() sets it; monkeypatch restores it
    with pytest.raises(SystemExit) as stop:
        run.main()
    return stop.value.code, capsys.readouterr().err


# Every process the suite starts inherits this mark, daemons that re-parent themselves included; at the
# end, any process still carrying it was leaked by a test, and fails the session.
SESSION_MARK = "LSTM_EXP_TEST_SESSION"
LEAK_GRACE_S = 15  # processes that are already exiting get this long to go


def pytest_sessionstart(session):
    os.environ[SESSION_MARK] = f"{os.getpid()}-{time.time_ns()}"


def pytest_sessionfinish(session, exitstatus):
    mark = f"{SESSION_MARK}={os.environ.get(SESSION_MARK, '')}"
    deadline = time.monotonic() + LEAK_GRACE_S
    while (left := processes.with_environment(mark)) and time.monotonic() < deadline:
        time.sleep(0.5)
    if left:
        lines = "\n".join(f"  pid {p.pid}: {p.command[:160]}" for p in left)
        print(f"\nthe test session leaked {len(left)} process(es); killing them:\n{lines}", file=sys.stderr)
        for p in left:
            with contextlib.suppress(ProcessLookupError):
                os.kill(p.pid, signal.SIGKILL)
        session.exitstatus = 1
