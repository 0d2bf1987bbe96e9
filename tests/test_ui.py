"""`mlflow ui`, started as the README says from another directory, on a store the real CLI wrote: the
run, its dataset and its artifacts are found where the run recorded them.
"""

import json

import pytest
import requests
from conftest import run_cli
from services import mlflow_server

pytestmark = [pytest.mark.slow, pytest.mark.service]
HTTP_TIMEOUT = 15  # s: one request


def test_ui_shows_a_cli_run_with_its_dataset_and_artifacts(tmp_path):
    launch = tmp_path / "launch"
    launch.mkdir()
    proc = run_cli("model=stacked", cwd=launch)
    assert proc.returncode == 0, proc.stderr
    uri = f"sqlite:///{launch / 'mlflow.db'}"
    assert f"--backend-store-uri {uri}" in proc.stdout  # the command the run printed

    with mlflow_server(uri, tmp_path / "elsewhere", ui=True) as url:
        reply = requests.get(f"{url}/api/2.0/mlflow/experiments/get-by-name",
                             params={"experiment_name": "lstm_exp"}, timeout=HTTP_TIMEOUT)
        experiment = reply.json()["experiment"]
        assert {t["key"]: t["value"] for t in experiment["tags"]}["mlflow.experimentKind"] == \
            "custom_model_development"  # the UI opens its training view, not the GenAI one
        reply = requests.post(f"{url}/api/2.0/mlflow/runs/search",
                              json={"experiment_ids": [experiment["experiment_id"]]}, timeout=HTTP_TIMEOUT)
        (run,) = reply.json()["runs"]
        run_id = run["info"]["run_id"]
        assert run_id in proc.stdout and run["info"]["status"] == "FINISHED"
        assert run["inputs"]["dataset_inputs"][0]["dataset"]["name"] == "input"
        assert f"runs/{run_id}?workflowType=machine_learning" in proc.stdout

        # What the UI's artifact preview fetches: shapes.json as the run logged it.
        reply = requests.get(f"{url}/get-artifact", params={"path": "shapes.json", "run_uuid": run_id},
                             timeout=HTTP_TIMEOUT)
        assert reply.status_code == 200, reply.text[:300]
        (logged,) = launch.glob(f"mlartifacts/**/{run_id}/artifacts/shapes.json")
        assert reply.json() == json.loads(logged.read_text())
        assert reply.json()["actual"]["output"] == [2, 3, 5]
