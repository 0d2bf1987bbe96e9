"""The MLflow UI (scripts/mlflow-ui) on a store the real CLI wrote: the run, its dataset and artifacts.

The UI is launched from another directory with an explicit --backend-store-uri, so it has to find
the artifacts where the run recorded them.
"""

import json
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest
import requests
from conftest import REPO, run_cli

pytestmark = pytest.mark.slow
UI = REPO / "scripts" / "mlflow-ui"
HTTP_TIMEOUT = 15  # s: one request


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _group_alive(pgid: int) -> bool:
    """Whether a live (non-zombie) process is left in the process group."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            state, _, group = stat.read_text().rsplit(")", 1)[1].split()[:3]
        except (OSError, ValueError):
            continue
        if int(group) == pgid and state != "Z":
            return True
    return False


def _group_gone(pgid: int, timeout: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout
    while _group_alive(pgid) and time.monotonic() < deadline:
        time.sleep(0.2)
    return not _group_alive(pgid)


def test_ui_shows_a_cli_run_with_its_dataset_and_artifacts(tmp_path):
    launch, elsewhere, state = tmp_path / "launch", tmp_path / "elsewhere", tmp_path / "state"
    launch.mkdir()
    elsewhere.mkdir()
    proc = run_cli("model=stacked", cwd=launch)
    assert proc.returncode == 0, proc.stderr
    uri = f"sqlite:///{launch / 'mlflow.db'}"

    port = _free_port()
    start = [str(UI), "start", "--background", "--port", str(port), "--backend-store-uri", uri,
             "--state-dir", str(state)]
    pidfile = state / f"ui-{port}.pid"
    try:
        t0 = time.monotonic()
        started = subprocess.run(start, cwd=elsewhere, capture_output=True, text=True, timeout=180)
        assert started.returncode == 0, started.stderr
        print(f"mlflow-ui healthy after {time.monotonic() - t0:.1f} s")
        url = started.stdout.strip()
        assert url == f"http://127.0.0.1:{port}"

        reply = requests.get(f"{url}/api/2.0/mlflow/experiments/get-by-name",
                             params={"experiment_name": "lstm_exp"}, timeout=HTTP_TIMEOUT)
        experiment_id = reply.json()["experiment"]["experiment_id"]
        reply = requests.post(f"{url}/api/2.0/mlflow/runs/search",
                              json={"experiment_ids": [experiment_id]}, timeout=HTTP_TIMEOUT)
        (run,) = reply.json()["runs"]
        run_id = run["info"]["run_id"]
        assert run_id in proc.stdout and run["info"]["status"] == "FINISHED"
        assert run["inputs"]["dataset_inputs"][0]["dataset"]["name"] == "input"

        # What the UI's artifact preview fetches: shapes.json as the run logged it.
        reply = requests.get(f"{url}/get-artifact", params={"path": "shapes.json", "run_uuid": run_id},
                             timeout=HTTP_TIMEOUT)
        assert reply.status_code == 200, reply.text[:300]
        (logged,) = launch.glob(f"mlartifacts/**/{run_id}/artifacts/shapes.json")
        assert reply.json() == json.loads(logged.read_text())
        assert reply.json()["actual"]["output"] == [2, 3, 5]
    finally:
        pgid = int(pidfile.read_text()) if pidfile.is_file() else None
        stopped = subprocess.run([str(UI), "stop", "--port", str(port), "--state-dir", str(state)],
                                 capture_output=True, text=True, timeout=60)
        if pgid and not _group_gone(pgid):  # never leak the server, but fail the test
            os.killpg(pgid, signal.SIGKILL)
            pytest.fail(f"scripts/mlflow-ui stop left process group {pgid} running")
    assert stopped.returncode == 0, stopped.stderr
