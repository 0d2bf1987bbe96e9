"""Tracking settings as users type them: MLflow's own relative SQLite form works; what MLflow would
refuse with a traceback (a deleted experiment, names past its limits, malformed URIs, a missing database
driver) is bad input: exit 2 and one line. And a sweep whose first job is refused records every later
job in its own run (the bug where job 1 logged into job 0's run).
"""

import os
import socket

import pytest
from conftest import error_lines, run_cli, run_in_process
from mlflow.tracking import MlflowClient

from lstm_exp.errors import ConfigError
from lstm_exp.record.http_bounds import http_bounds
from lstm_exp.record.store import check_reachable

# (id, override, what the line must contain); all refused before TensorFlow or MLflow load.
REFUSED = [
    ("scheme", "tracking.uri=ftp://host/x", "unknown scheme"),
    ("file-store", "tracking.uri=./mlruns", "unknown scheme"),
    ("port", "tracking.uri=http://127.0.0.1:99999", "malformed"),
    ("no-host", "tracking.uri=http://", "a server address"),
    ("space", "tracking.uri=sqlite:///my runs.db", "no spaces"),  # argv as a shell passes it
    ("memory", "tracking.uri=sqlite://", "a file path after sqlite:///"),
    ("no-driver", "tracking.uri=mssql://u@127.0.0.1/db", "pyodbc is not installed"),
    ("password", "tracking.uri=https://bob:pw@mlflow.example:443", "bob:***@mlflow"),
    ("pg-password", "tracking.uri=postgresql://bob:pw@127.0.0.1/mlflow", "PGPASSWORD"),
    ("experiment-long", "tracking.experiment=" + "e" * 257, "at most 256"),
    ("experiment-blank", "tracking.experiment=' '", "non-empty"),
    ("experiment-control", "tracking.experiment='a\tb'", "printable"),
    ("run-name-long", "tracking.run_name=" + "r" * 251, "at most 250"),
]


@pytest.mark.parametrize(("override", "expected"), [c[1:] for c in REFUSED], ids=[c[0] for c in REFUSED])
def test_tracking_settings_mlflow_would_refuse(override, expected, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    status, stderr = run_in_process([override], monkeypatch, capsys)
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert status == 2 and len(lines) == 1, lines
    key = override.split("=")[0]
    assert lines[0].startswith(f"error: {key} must be") and expected in lines[0]
    assert not (tmp_path / "mlflow.db").exists()


@pytest.mark.slow
def test_relative_sqlite_uri_is_relative_to_the_launch_directory(tmp_path):
    (tmp_path / "runs").mkdir()
    proc = run_cli("tracking.uri=sqlite:///runs/mlflow.db", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    client = MlflowClient(f"sqlite:///{tmp_path / 'runs' / 'mlflow.db'}")
    (found,) = client.search_runs([client.get_experiment_by_name("lstm_exp").experiment_id])
    assert found.info.status == "FINISHED" and not (tmp_path / "mlflow.db").exists()


@pytest.mark.slow
def test_a_deleted_experiment_says_how_to_restore_it(tmp_path):
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    client.delete_experiment(client.create_experiment("gone"))
    proc = run_cli("tracking.experiment=gone", cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    (line,) = error_lines(proc)
    assert line.startswith("error: tracking.experiment must be an experiment that is not deleted")
    assert "mlflow experiments restore --experiment-id" in line
    assert line.endswith("Received: tracking.experiment='gone'")
    assert client.search_runs([e.experiment_id for e in client.search_experiments(view_type=3)]) == []


@pytest.mark.slow
def test_a_refused_job_never_lends_its_run_to_the_next(tmp_path):
    proc = run_cli("-m", "seed=1717171717171,0,1", cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr  # the only failure is bad input
    assert "error: job 0 " in proc.stderr and "seed" in proc.stderr
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("lstm_exp").experiment_id])
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert sorted(r.data.params["seed"] for r in children) == ["0", "1"]
    for child in children:  # each run holds its own job's params, and its name says which job
        assert child.data.tags["lstm_exp.overrides"] == f"seed={child.data.params['seed']}"
        assert child.info.status == "FINISHED"
    assert "RUNNING" not in {r.info.status for r in runs}


def test_a_servers_request_bounds_hold_for_their_block_only(monkeypatch):
    monkeypatch.delenv("MLFLOW_HTTP_REQUEST_TIMEOUT", raising=False)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")  # the user's own stays
    with socket.socket() as free:  # a port nothing listens on once closed
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    before = dict(os.environ)
    with pytest.raises(ConfigError, match="a reachable MLflow tracking server"):
        check_reachable(f"http://127.0.0.1:{port}", 2.0)
    assert dict(os.environ) == before  # the check changes nothing
    with http_bounds(7.5):
        assert os.environ["MLFLOW_HTTP_REQUEST_TIMEOUT"] == "7"
        assert os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] == "0"
    assert dict(os.environ) == before
