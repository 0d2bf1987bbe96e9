"""Helpers for the launcher, fault, determinism and tracking-server tests: sweeps run through the real
CLI and what they leave in the store (the parent's summary table, the child runs).
"""

import csv
import re
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from conftest import run_cli
from faults import fault_overrides

HTTP_TIMEOUT_S = 15  # one REST call

# One small config, swept by several launchers: test_launchers checks each sweep, test_determinism
# compares their arrays. Each sweep runs once per session (they cost tens of seconds each).
CONFIG = ("model=stacked", "input=random", "input.initial_state=random")
JOBLIB_SWEEP = ("hydra/launcher=joblib", "hydra.launcher.n_jobs=4", *CONFIG, "seed=range(0,12)")
SUBMITIT_SWEEP = ("hydra/launcher=submitit_local", *CONFIG, "seed=0,1", *fault_overrides(forward=[1]))


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


def parent_id(stdout: str) -> str:
    """The sweep's parent run, from the line the sweep prints at its end."""
    found = re.findall(r"sweep parent run ([0-9a-f]{32})", stdout)
    assert found, f"no parent run printed:\n{stdout[-2000:]}"
    return found[-1]


def outcomes(client, parent_run_id: str) -> dict[int, dict]:
    """Job number -> its row of the parent's summary table, with the job's exit status derived."""
    with tempfile.TemporaryDirectory() as tmp:
        with open(client.download_artifacts(parent_run_id, "sweep_summary.csv", tmp)) as handle:
            rows = list(csv.DictReader(handle))
    exit_status = {"FINISHED": 0, "SKIPPED": 0, "INVALID": 2}
    return {int(r["job"]): {**r, "exit_status": exit_status.get(r["status"], 1),
                            "skipped": r["status"] == "SKIPPED"} for r in rows}


def sweep_runs(client, parent_run_id: str) -> tuple:
    """(parent run, its child runs) of one sweep, read back from the store."""
    parent = client.get_run(parent_run_id)
    children = client.search_runs(
        [parent.info.experiment_id], f"tags.mlflow.parentRunId = '{parent_run_id}'", max_results=500
    )
    return parent, children


def read_states(client, run_id: str, folder: Path) -> dict[str, np.ndarray]:
    """A run's logged `states.npz`, downloaded."""
    folder.mkdir(parents=True, exist_ok=True)
    with np.load(client.download_artifacts(run_id, "states.npz", str(folder))) as archive:
        return {name: archive[name] for name in archive.keys()}
