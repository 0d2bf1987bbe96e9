"""`tracking=server`: a parallel sweep recording into a shared MLflow server on PostgreSQL (Debian's,
run as the postgres user); every run is then found through the server's REST API.
"""

import pytest
import requests
from mlflow.tracking import MlflowClient
from services import mlflow_server, postgres_cluster
from sweeps import HTTP_TIMEOUT_S, outcomes, parent_id, run_sweep

pytestmark = [pytest.mark.slow, pytest.mark.service]


def _rest(url: str, endpoint: str, **body) -> dict:
    reply = requests.post(f"{url}/api/2.0/mlflow/{endpoint}", json=body, timeout=HTTP_TIMEOUT_S)
    reply.raise_for_status()
    return reply.json()


def test_parallel_sweep_into_a_server_on_postgres(tmp_path):
    with postgres_cluster() as backend, mlflow_server(backend, tmp_path / "server") as url:
        proc = run_sweep("hydra/launcher=joblib", "hydra.launcher.n_jobs=2", "model=stacked",
                         "seed=0,1,2,3", "tracking=server", f"tracking.uri={url}",
                         cwd=tmp_path, sweep_dir=tmp_path / "sweep")
        assert proc.returncode == 0, proc.stderr
        assert not (tmp_path / "mlflow.db").exists()  # nothing fell back to the local store

        experiment = requests.get(f"{url}/api/2.0/mlflow/experiments/get-by-name", timeout=HTTP_TIMEOUT_S,
                                  params={"experiment_name": "lstm_exp"}).json()["experiment"]
        runs = _rest(url, "runs/search", experiment_ids=[experiment["experiment_id"]],
                     max_results=100)["runs"]
        parent = parent_id(proc.stdout)
        tags = {r["info"]["run_id"]: {t["key"]: t["value"] for t in r["data"]["tags"]} for r in runs}
        children = [r for r in runs if tags[r["info"]["run_id"]].get("mlflow.parentRunId") == parent]
        assert len(runs) == 5 and parent in tags and len(children) == 4
        assert {r["info"]["status"] for r in runs} == {"FINISHED"}
        jobs = outcomes(MlflowClient(url), parent)
        assert {c["info"]["run_id"] for c in children} == {o["run_id"] for o in jobs.values()}
        # Artifacts went through the server too.
        listed = requests.get(f"{url}/api/2.0/mlflow/artifacts/list", timeout=HTTP_TIMEOUT_S,
                              params={"run_id": children[0]["info"]["run_id"]}).json()["files"]
        assert "states.npz" in {f["path"] for f in listed}
