"""`tracking=server`: a parallel sweep recording into a shared MLflow server on PostgreSQL, both started
by their scripts as a user would; every run is then found through the server's REST API.
"""

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest
import requests
from conftest import REPO
from sweeps import (
    HTTP_TIMEOUT_S,
    free_port,
    outcomes,
    parent_id,
    run_sweep,
    script,
    start_server,
    stop_server,
)

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(os.geteuid() != 0, reason="scripts/postgres needs root (runuser -u postgres)"),
]


def _rest(url: str, endpoint: str, **body) -> dict:
    reply = requests.post(f"{url}/api/2.0/mlflow/{endpoint}", json=body, timeout=HTTP_TIMEOUT_S)
    reply.raise_for_status()
    return reply.json()


def test_parallel_sweep_into_a_server_on_postgres(tmp_path):
    # Not under tmp_path: the postgres OS user cannot enter pytest's 0700 base directory.
    datadir = Path(tempfile.mkdtemp(prefix="lstm_exp_pg_"))
    pg_port, port, state = free_port(), free_port(), tmp_path / "server"
    try:
        backend = script("postgres", "--datadir", str(datadir), "--port", str(pg_port))
        assert backend.startswith("postgresql://")
        url = start_server(backend, port, state)
        sweep_dir = tmp_path / "sweep"
        proc = run_sweep("hydra/launcher=joblib", "hydra.launcher.n_jobs=2", "model=stacked",
                         "seed=0,1,2,3", "tracking=server", f"tracking.uri={url}",
                         cwd=tmp_path, sweep_dir=sweep_dir)
        assert proc.returncode == 0, proc.stderr
        assert not (tmp_path / "mlflow.db").exists()  # nothing fell back to the local store

        experiment = requests.get(f"{url}/api/2.0/mlflow/experiments/get-by-name", timeout=HTTP_TIMEOUT_S,
                                  params={"experiment_name": "lstm_exp"}).json()["experiment"]
        runs = _rest(url, "runs/search", experiment_ids=[experiment["experiment_id"]],
                     max_results=100)["runs"]
        parent = parent_id(sweep_dir)
        tags = {r["info"]["run_id"]: {t["key"]: t["value"] for t in r["data"]["tags"]} for r in runs}
        children = [r for r in runs if tags[r["info"]["run_id"]].get("mlflow.parentRunId") == parent]
        assert len(runs) == 5 and parent in tags and len(children) == 4
        assert {r["info"]["status"] for r in runs} == {"FINISHED"}
        assert {c["info"]["run_id"] for c in children} == {o["run_id"] for o in outcomes(sweep_dir).values()}
        # Artifacts went through the server too.
        listed = requests.get(f"{url}/api/2.0/mlflow/artifacts/list", timeout=HTTP_TIMEOUT_S,
                              params={"run_id": children[0]["info"]["run_id"]}).json()["files"]
        assert "states.npz" in {f["path"] for f in listed}
    finally:
        stop_server(port, state)
        subprocess.run([str(REPO / "scripts" / "postgres"), "stop", "--datadir", str(datadir)],
                       capture_output=True, timeout=90, check=False)
        shutil.rmtree(datadir, ignore_errors=True)
