"""The services the tests start (tests/services.py) from any checkout path: an `mlflow server` on SQLite
and on PostgreSQL takes a run, a metric and an artifact, and stopping it leaves no process behind.
"""

import contextlib
import subprocess
import sys
from pathlib import Path

import pytest
import requests
from mlflow.tracking import MlflowClient
from processes import group_members, with_command
from services import mlflow_server, postgres_cluster, stop_group

pytestmark = pytest.mark.slow
HTTP_TIMEOUT_S = 15


def _track_one_run(url: str, tmp_path: Path) -> None:
    client = MlflowClient(url)
    experiment = client.create_experiment("servers-test")
    run = client.create_run(experiment).info.run_id
    client.log_metric(run, "m", 1.5)
    (tmp_path / "a.txt").write_text("artifact")
    client.log_artifact(run, str(tmp_path / "a.txt"))
    client.set_terminated(run)
    found = requests.post(f"{url}/api/2.0/mlflow/runs/search", timeout=HTTP_TIMEOUT_S,
                          json={"experiment_ids": [experiment]}).json()["runs"]
    assert [(r["info"]["status"], r["data"]["metrics"][0]["value"]) for r in found] == [("FINISHED", 1.5)]
    assert [f.path for f in client.list_artifacts(run)] == ["a.txt"]


@pytest.mark.service
@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_server_tracks_and_stops_whole(backend, tmp_path):
    with contextlib.ExitStack() as stack:
        if backend == "sqlite":
            backend_uri = f"sqlite:///{tmp_path / 'server.db'}"
        else:
            backend_uri = stack.enter_context(postgres_cluster())
        with mlflow_server(backend_uri, tmp_path / "server") as url:
            _track_one_run(url, tmp_path)
            port_arg = f"--port {url.rsplit(':', 1)[1]}"
            assert with_command(port_arg)
        with pytest.raises(requests.ConnectionError):
            requests.get(url + "/health", timeout=HTTP_TIMEOUT_S)
        assert with_command(port_arg) == []


def test_stop_group_ends_every_member():
    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], start_new_session=True)
    assert group_members(process.pid) == [process.pid]
    stop_group(process, timeout_s=10)
    assert group_members(process.pid) == []
