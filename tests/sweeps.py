"""Helpers for the launcher, fault, determinism and tracking-server tests: sweeps run through the real
CLI, what they leave behind (outcome files, MLflow runs), and a tracking server started by its script.
"""

import json
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from conftest import REPO, run_cli

SERVER_START_S = 120  # scripts/mlflow-server: start, schema migrations and health check included
HTTP_TIMEOUT_S = 15  # one REST call

# One small config, swept by several launchers: test_launchers checks each sweep, test_determinism
# compares their arrays. Each sweep runs once per session (they cost tens of seconds each).
CONFIG = ("model=stacked", "input=random", "input.initial_state=random")
JOBLIB_SWEEP = ("hydra/launcher=joblib", "hydra.launcher.n_jobs=4", *CONFIG, "seed=range(0,12)")
SUBMITIT_SWEEP = ("hydra/launcher=submitit_local", *CONFIG, "seed=0", "run.inject_fault=null,forward")


@dataclass
class Sweep:
    """A finished sweep: its process, its launch directory (holding mlflow.db) and its sweep dir."""

    proc: subprocess.CompletedProcess
    launch: Path
    sweep_dir: Path

    @property
    def store(self) -> str:
        return f"sqlite:///{self.launch / 'mlflow.db'}"


_shared: dict[tuple[str, ...], Sweep] = {}


def shared_sweep(tmp_path_factory, overrides: tuple[str, ...]) -> Sweep:
    """The sweep of `overrides` into a fresh launch directory, run once per session."""
    if overrides not in _shared:
        launch = tmp_path_factory.mktemp("sweep")
        assert not (launch / "mlflow.db").exists()
        start = time.monotonic()
        proc = run_sweep(*overrides, cwd=launch, sweep_dir=launch / "sweep")
        print(f"sweep {' '.join(overrides)}: exit {proc.returncode} in {time.monotonic() - start:.1f} s")
        _shared[overrides] = Sweep(proc, launch, launch / "sweep")
    return _shared[overrides]


def run_sweep(*overrides: str, cwd: Path, sweep_dir: Path, **kwargs) -> subprocess.CompletedProcess:
    """`python -m lstm_exp.run -m overrides` into `sweep_dir` (Hydra's default dir is per second)."""
    return run_cli("-m", *overrides, f"hydra.sweep.dir={sweep_dir}", cwd=cwd, **kwargs)


def outcomes(sweep_dir: Path) -> dict[int, dict]:
    """Job number -> the `lstm_exp_job.json` that job left in its output dir."""
    found = {}
    for path in sweep_dir.glob("*/lstm_exp_job.json"):
        found[int(path.parent.name)] = json.loads(path.read_text())
    return found


def sweep_runs(client, parent_run_id: str) -> tuple:
    """(parent run, its child runs) of one sweep, read back from the store."""
    parent = client.get_run(parent_run_id)
    children = client.search_runs(
        [parent.info.experiment_id], f"tags.mlflow.parentRunId = '{parent_run_id}'", max_results=500
    )
    return parent, children


def parent_id(sweep_dir: Path) -> str:
    """The parent run id the sweep's start wrote for its jobs."""
    return (sweep_dir / ".lstm_exp_parent_run").read_text().strip()


def read_states(client, run_id: str, folder: Path) -> dict[str, np.ndarray]:
    """A run's logged `states.npz`, downloaded."""
    folder.mkdir(parents=True, exist_ok=True)
    with np.load(client.download_artifacts(run_id, "states.npz", str(folder))) as archive:
        return {name: archive[name] for name in archive.keys()}


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def script(name: str, *args: str, timeout: float = SERVER_START_S) -> str:
    """Runs scripts/<name>; requires success and returns its stdout (the URL or URI it prints)."""
    proc = subprocess.run([str(REPO / "scripts" / name), *args], capture_output=True, text=True,
                          timeout=timeout)
    assert proc.returncode == 0, f"scripts/{name} {' '.join(args)}: {proc.stderr[-2000:]}"
    return proc.stdout.strip()


def start_server(backend_uri: str, port: int, state_dir: Path) -> str:
    """A real `scripts/mlflow-server --background` on `backend_uri`; returns its URL."""
    return script("mlflow-server", "--background", "--port", str(port), "--state-dir", str(state_dir),
                  "--backend-store-uri", backend_uri,
                  "--artifacts-destination", str(state_dir / "mlartifacts"))


def stop_server(port: int, state_dir: Path) -> None:
    """`scripts/mlflow-server stop` (SIGTERM to its process group, SIGKILL after 20 s)."""
    subprocess.run([str(REPO / "scripts" / "mlflow-server"), "stop", "--port", str(port),
                    "--state-dir", str(state_dir)], capture_output=True, timeout=60, check=False)
