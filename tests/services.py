"""Real services for tests: an `mlflow server` and a private PostgreSQL cluster, each started in its own
process group and stopped as a whole, plus the one copy of the port and process-group helpers
(the group's members come from tests/processes.py).

Users start the same server with MLflow's own command (README, "Sharing runs"); nothing here wraps it
for them.
"""

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from processes import group_members

START_TIMEOUT_S = 180  # schema migrations on a busy 2-core machine included
STOP_TIMEOUT_S = 30
PG_BIN = Path("/usr/lib/postgresql")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stop_group(process: subprocess.Popen, timeout_s: float = STOP_TIMEOUT_S) -> None:
    """SIGTERM to the whole process group, SIGKILL to what is left after `timeout_s`; then reaped."""
    pgid = process.pid
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    while group_members(pgid) and time.monotonic() < deadline:
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=0.2)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGKILL)
    process.wait(timeout=timeout_s)


def wait_healthy(url: str, process: subprocess.Popen, log: Path, timeout_s: float = START_TIMEOUT_S) -> None:
    """Waits for `url`/health to answer 200; fails at once if the server exits first."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"mlflow exited {process.returncode}: {log.read_text()[-3000:]}")
        with contextlib.suppress(OSError):
            with urllib.request.urlopen(url + "/health", timeout=5) as reply:
                if reply.status == 200:
                    return
        time.sleep(0.3)
    raise RuntimeError(f"mlflow did not answer {url}/health in {timeout_s} s: {log.read_text()[-3000:]}")


def mlflow_command() -> str:
    """The venv's `mlflow`, the one a user of this install has."""
    return str(Path(sys.executable).with_name("mlflow"))


@contextlib.contextmanager
def mlflow_server(backend_uri: str, folder: Path, *extra: str, ui: bool = False,
                  env: dict[str, str] | None = None) -> Iterator[str]:
    """`mlflow server` (or, with `ui`, `mlflow ui` as the README starts it) on 127.0.0.1 with a free
    port; a server keeps artifacts under `folder`; `env` is added to its environment (the basic-auth
    app's config file, say). Yields its URL; stops its whole process group."""
    port = free_port()
    log = folder / f"mlflow-{port}.log"
    folder.mkdir(parents=True, exist_ok=True)
    command = [mlflow_command(), "ui" if ui else "server", "--host", "127.0.0.1", "--port", str(port),
               "--backend-store-uri", backend_uri, "--workers", "1", *extra]
    if not ui:
        command += ["--artifacts-destination", str(folder / "artifacts")]
    with log.open("w") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
                                   env={**os.environ, **(env or {})})
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(url, process, log)
        yield url
    finally:
        stop_group(process)


def _as_postgres(*command: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(["runuser", "-u", "postgres", "--", *command], capture_output=True, text=True,
                          timeout=START_TIMEOUT_S, check=check)


def postgres_bin() -> Path | None:
    """Debian's PostgreSQL server binaries (installed by .ci/run and scripts/test-services)."""
    versions = sorted(PG_BIN.glob("*/bin/pg_ctl")) if PG_BIN.is_dir() else []
    return versions[-1].parent if versions else None


@contextlib.contextmanager
def postgres_cluster() -> Iterator[str]:
    """A private PostgreSQL cluster on 127.0.0.1, run as the `postgres` user; yields a database URI."""
    binaries = postgres_bin()
    if binaries is None or shutil.which("runuser") is None:
        raise RuntimeError("PostgreSQL is not installed: scripts/test-services installs it")
    # Not under pytest's tmp_path: the postgres user cannot enter its 0700 base directory.
    folder = Path(tempfile.mkdtemp(prefix="lstm_exp_pg_"))
    shutil.chown(folder, "postgres", "postgres")
    data, sockets = folder / "data", folder / "sockets"
    for path in (data, sockets):
        path.mkdir()
        shutil.chown(path, "postgres", "postgres")
    port = free_port()
    _as_postgres(str(binaries / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres")
    options = f"-h 127.0.0.1 -p {port} -k {sockets}"
    _as_postgres(str(binaries / "pg_ctl"), "-D", str(data), "-o", options, "-l", str(data / "log"), "-w",
                 "start")
    try:
        _as_postgres(str(binaries / "createdb"), "-h", "127.0.0.1", "-p", str(port), "mlflow")
        yield f"postgresql://postgres@127.0.0.1:{port}/mlflow"
    finally:
        _as_postgres(str(binaries / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop", check=False)
        shutil.rmtree(folder, ignore_errors=True)
