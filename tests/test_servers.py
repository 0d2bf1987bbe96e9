"""End-to-end checks of scripts/mlflow-server, scripts/mlflow-ui and scripts/postgres.

Each test starts the real server through its script (a subprocess), tracks an experiment, a run,
a metric and an artifact with ``MlflowClient``, reads them back over the REST API and stops the
server in ``finally`` (also on failure), then checks that no process of it is left.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from mlflow.tracking import MlflowClient

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
SCRIPTS = REPO / "scripts"
START_TIMEOUT = 120  # s: a script run, server start and schema migrations included
HTTP_TIMEOUT = 15  # s: one REST call


@pytest.fixture(autouse=True)
def _bounded_mlflow_http(monkeypatch: pytest.MonkeyPatch) -> None:
    # MlflowClient retries with exponential backoff for minutes by default: keep failures quick.
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "1")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", str(HTTP_TIMEOUT))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_script(name: str, *args: str, cwd: Path | None = None) -> str:
    """Run scripts/<name>, require success, return its stdout."""
    proc = subprocess.run(
        [str(SCRIPTS / name), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=START_TIMEOUT,
    )
    assert proc.returncode == 0, (
        f"{name} {' '.join(args)} exited {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    )
    return proc.stdout


def group_members(pgid: int) -> list[int]:
    """Live (non-zombie) processes in process group pgid."""
    members = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        state, pgrp = fields[0], int(fields[2])
        if pgrp == pgid and state != "Z":
            members.append(int(stat.parent.name))
    return members


def wait_group_gone(pgid: int, timeout: float = 15.0) -> list[int]:
    deadline = time.monotonic() + timeout
    while (left := group_members(pgid)) and time.monotonic() < deadline:
        time.sleep(0.2)
    return left


def stop_server(script: str, state_dir: Path, port: int) -> None:
    """`<script> stop`, then make sure nothing of the server's process group survives."""
    pidfile = state_dir / f"{'ui' if script == 'mlflow-ui' else 'server'}-{port}.pid"
    pgid = int(pidfile.read_text()) if pidfile.exists() else None
    proc = subprocess.run(
        [str(SCRIPTS / script), "stop", "--port", str(port), "--state-dir", str(state_dir)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    left = wait_group_gone(pgid) if pgid else []
    if left:  # the script failed to stop it: do not leak processes, but fail the test
        os.killpg(pgid, signal.SIGKILL)
    assert proc.returncode == 0, proc.stderr
    assert not left, f"{script} stop left processes {left} of group {pgid}"
    assert not pidfile.exists()


@pytest.fixture
def note(tmp_path: Path) -> Path:
    path = tmp_path / "note.txt"
    path.write_text("tracked through the server\n")
    return path


def track_over_http(url: str, note: Path) -> tuple[str, str]:
    """Experiment, run, metric and artifact through the server; returns (experiment_id, run_id)."""
    client = MlflowClient(tracking_uri=url)
    exp_id = client.create_experiment(f"servers-{uuid.uuid4().hex[:8]}")
    run_id = client.create_run(exp_id, run_name="smoke").info.run_id
    client.log_metric(run_id, "loss", 0.25, step=3)
    client.log_param(run_id, "units", "32")
    client.log_artifact(run_id, str(note))
    client.set_terminated(run_id)
    return exp_id, run_id


def check_over_rest(url: str, exp_id: str, run_id: str, note: Path) -> None:
    """Read experiment, run, metric and artifact back over the plain REST API."""
    r = requests.get(
        f"{url}/api/2.0/mlflow/experiments/search",
        params={"max_results": 100},
        timeout=HTTP_TIMEOUT,
    )
    r.raise_for_status()
    assert exp_id in {e["experiment_id"] for e in r.json()["experiments"]}

    r = requests.post(
        f"{url}/api/2.0/mlflow/runs/search",
        json={"experiment_ids": [exp_id], "max_results": 10},
        timeout=HTTP_TIMEOUT,
    )
    r.raise_for_status()
    runs = r.json()["runs"]
    assert [run["info"]["run_id"] for run in runs] == [run_id]
    data = runs[0]["data"]
    assert {(m["key"], m["value"], m["step"]) for m in data["metrics"]} == {("loss", 0.25, 3)}
    assert {"key": "units", "value": "32"} in data["params"]
    assert runs[0]["info"]["status"] == "FINISHED"

    r = requests.get(f"{url}/api/2.0/mlflow/artifacts/list", params={"run_id": run_id}, timeout=HTTP_TIMEOUT)
    r.raise_for_status()
    assert [f["path"] for f in r.json()["files"]] == [note.name]
    r = requests.get(
        f"{url}/get-artifact", params={"run_id": run_id, "path": note.name}, timeout=HTTP_TIMEOUT
    )
    r.raise_for_status()
    assert r.text == note.read_text()


@pytest.fixture
def pg_datadir() -> Iterator[Path]:
    # Not under tmp_path: pytest's base temp dir is 0700 root, which the postgres user cannot
    # enter. mkdtemp's own 0700 dir is fine: scripts/postgres chowns it to postgres.
    path = Path(tempfile.mkdtemp(prefix="lstm_exp_pg_"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def test_mlflow_server_sqlite(tmp_path: Path, note: Path) -> None:
    port, state, art = free_port(), tmp_path / "state", tmp_path / "mlartifacts"
    db = tmp_path / "server.db"
    args = ["--background", "--port", str(port), "--state-dir", str(state)]
    args += ["--backend-store-uri", f"sqlite:///{db}", "--artifacts-destination", str(art)]
    try:
        t0 = time.monotonic()
        url = run_script("mlflow-server", *args).strip()
        print(f"mlflow-server on sqlite healthy after {time.monotonic() - t0:.1f} s")
        assert url == f"http://127.0.0.1:{port}"
        assert requests.get(f"{url}/health", timeout=HTTP_TIMEOUT).text.strip() == "OK"
        # Idempotent: a second start finds the running server and just prints its address.
        assert run_script("mlflow-server", *args).strip() == url

        exp_id, run_id = track_over_http(url, note)
        check_over_rest(url, exp_id, run_id, note)
        # The artifact went through the server's proxy into --artifacts-destination.
        assert (art / exp_id / run_id / "artifacts" / note.name).read_text() == note.read_text()
        assert db.is_file()
    finally:
        stop_server("mlflow-server", state, port)


@pytest.mark.skipif(os.geteuid() != 0, reason="scripts/postgres needs root (apt-get, runuser -u postgres)")
def test_mlflow_server_postgres(tmp_path: Path, note: Path, pg_datadir: Path) -> None:
    psycopg2 = pytest.importorskip("psycopg2")
    pg_port, port, state = free_port(), free_port(), tmp_path / "state"
    while port == pg_port:
        port = free_port()
    pg = ["--datadir", str(pg_datadir)]
    args = ["--background", "--port", str(port), "--state-dir", str(state)]
    args += ["--artifacts-destination", str(tmp_path / "mlartifacts")]
    try:
        t0 = time.monotonic()
        uri = run_script("postgres", *pg, "--port", str(pg_port)).strip()
        print(f"postgres ready after {time.monotonic() - t0:.1f} s")
        assert uri == f"postgresql://lstm_exp:lstm_exp@127.0.0.1:{pg_port}/lstm_exp"
        # Idempotent: running again prints the same URI.
        assert run_script("postgres", *pg, "--port", str(pg_port)).strip() == uri
        try:
            t0 = time.monotonic()
            url = run_script("mlflow-server", *args, "--backend-store-uri", uri).strip()
            print(f"mlflow-server on postgres healthy after {time.monotonic() - t0:.1f} s")
            exp_id, run_id = track_over_http(url, note)
            check_over_rest(url, exp_id, run_id, note)
        finally:
            stop_server("mlflow-server", state, port)
        # The run lives in PostgreSQL, not in some fallback store.
        with psycopg2.connect(uri) as conn, conn.cursor() as cur:
            cur.execute("SELECT status FROM runs WHERE run_uuid = %s", (run_id,))
            assert cur.fetchall() == [("FINISHED",)]
        conn.close()
    finally:
        subprocess.run([str(SCRIPTS / "postgres"), "stop", *pg], capture_output=True, timeout=90, check=False)
    status = subprocess.run([str(SCRIPTS / "postgres"), "status", *pg], capture_output=True, timeout=30)
    assert status.returncode == 3, "PostgreSQL still running after `scripts/postgres stop`"


def test_mlflow_ui_local_store(tmp_path: Path, note: Path) -> None:
    # Populate the project's default local store in tmp_path the way a local run records it.
    local = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    exp_id = local.create_experiment(
        "local-runs", artifact_location=(tmp_path / "mlruns" / "local-runs").as_uri()
    )
    run_id = local.create_run(exp_id, run_name="smoke").info.run_id
    local.log_metric(run_id, "loss", 0.25, step=3)
    local.log_param(run_id, "units", "32")
    local.log_artifact(run_id, str(note))
    local.set_terminated(run_id)

    port, state = free_port(), tmp_path / "state"
    try:
        t0 = time.monotonic()
        # No --backend-store-uri: the default is sqlite:///$PWD/mlflow.db of the launch directory.
        args = ["--background", "--port", str(port), "--state-dir", str(state)]
        url = run_script("mlflow-ui", *args, cwd=tmp_path).strip()
        print(f"mlflow-ui healthy after {time.monotonic() - t0:.1f} s")
        assert url == f"http://127.0.0.1:{port}"
        check_over_rest(url, exp_id, run_id, note)
    finally:
        stop_server("mlflow-ui", state, port)


def test_scripts_need_the_venv(tmp_path: Path) -> None:
    """Without .venv the server scripts stop with one line that says to run the setup."""
    (tmp_path / "scripts").mkdir()
    for name in ("mlflow-server", "mlflow-ui"):
        shutil.copy2(SCRIPTS / name, tmp_path / "scripts" / name)
        proc = subprocess.run(
            [str(tmp_path / "scripts" / name), "--port", str(free_port())],
            capture_output=True,
            text=True,
            timeout=30,
            cwd=tmp_path,
        )
        assert proc.returncode == 1
        assert proc.stdout == ""
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and "setup" in lines[0], proc.stderr
