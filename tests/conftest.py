"""Shared fixtures: the real composed config, the real CLI in a subprocess, a temporary MLflow store."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

import lstm_exp

REPO = Path(__file__).resolve().parents[1]
CLI_TIMEOUT = 300  # s: one CLI run, TensorFlow import included, on a busy 2-core machine


def compose(*overrides: str):
    """The real config (conf/), with tracking off unless a test turns it on."""
    return lstm_exp.config.compose("tracking.enabled=false", *overrides)


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
