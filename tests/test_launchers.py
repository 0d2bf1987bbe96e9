"""Sweeps through Hydra's joblib and submitit launchers: one parent run opened by the launching process,
a child run per job from the workers (which find the parent through the sweep directory), an outcome
file per job, and the sweep's exit status.
"""

import os
import subprocess
import sys

import pytest
from mlflow.tracking import MlflowClient
from sweeps import JOBLIB_SWEEP, SUBMITIT_SWEEP, outcomes, parent_id, shared_sweep, sweep_runs

import lstm_exp

STORE_RACES = ("database is locked", "RESOURCE_ALREADY_EXISTS", "Traceback", "UNIQUE constraint")


@pytest.mark.parametrize("launcher,overrides,target", [
    ("joblib", ["hydra.launcher.n_jobs=4"], "JoblibLauncher"),
    ("submitit_local", ["hydra.launcher.timeout_min=10"], "LocalLauncher"),
    ("submitit_slurm", ["hydra.launcher.partition=cpu", "hydra.launcher.timeout_min=30",
                        "hydra.launcher.cpus_per_task=2", "hydra.launcher.mem_gb=8"], "SlurmLauncher"),
    ("slurm", ["hydra.launcher.partition=cpu", "hydra.launcher.poll_s=1"], "LstmExpSlurmLauncher"),
])
def test_each_launcher_composes_with_our_config(launcher, overrides, target):
    cfg = lstm_exp.compose(f"hydra/launcher={launcher}", *overrides, return_hydra_config=True)
    assert cfg.hydra.launcher._target_.endswith(target)
    assert cfg.hydra.sweeper._target_.endswith("LstmExpSweeper")


# Opens the default store of the working directory once the other processes are ready too (MLflow is
# imported before that barrier, so that all of them reach the store at the same moment).
OPEN_STORE = (
    "import pathlib, sys, time\n"

    "import mlflow.tracking\n"
    "from lstm_exp.record import store\n"
    "ready = pathlib.Path('ready'); (ready / sys.argv[1]).touch()\n"
    "deadline = time.monotonic() + 60\n"
    "while len(list(ready.iterdir())) < int(sys.argv[2]) and time.monotonic() < deadline:\n"
    "    time.sleep(0.01)\n"
    "print(store.open_experiment(store.default_store_uri(None), 'lstm_exp', 15.0)[1])\n"
)


@pytest.mark.slow
def test_runs_started_side_by_side_share_a_fresh_store(tmp_path):
    # No sweep prepares the store here: four processes create and migrate it at the same moment.
    (tmp_path / "ready").mkdir()
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    procs = [subprocess.Popen([sys.executable, "-c", OPEN_STORE, str(n), "4"], cwd=tmp_path, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for n in range(4)]
    try:
        results = [proc.communicate(timeout=120) for proc in procs]
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert [proc.returncode for proc in procs] == [0] * 4, [err[-500:] for _, err in results]
    assert len({out.strip() for out, _ in results}) == 1  # one experiment, the same id for all
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    assert [e.name for e in client.search_experiments()].count("lstm_exp") == 1


def _overlapping(runs) -> bool:
    """True when two runs were RUNNING at the same time (the jobs really ran in parallel)."""
    spans = sorted((r.info.start_time, r.info.end_time) for r in runs)
    return any(later[0] < earlier[1] for earlier, later in zip(spans, spans[1:], strict=False))


@pytest.mark.slow
def test_joblib_sweep_into_a_fresh_sqlite_store_records_every_job(tmp_path_factory):
    # 12 jobs on 4 loky workers, into a store the sweep's start creates and migrates once.
    sweep = shared_sweep(tmp_path_factory, JOBLIB_SWEEP)
    assert sweep.proc.returncode == 0, sweep.proc.stderr
    for text in STORE_RACES:
        assert text not in sweep.proc.stdout + sweep.proc.stderr
    client = MlflowClient(sweep.store)
    jobs = outcomes(client, parent_id(sweep.proc.stdout))
    assert sorted(jobs) == list(range(12)) and all(o["exit_status"] == 0 for o in jobs.values())
    assert [e.name for e in client.search_experiments()].count("lstm_exp") == 1
    parent, children = sweep_runs(client, parent_id(sweep.proc.stdout))
    assert parent.info.status == "FINISHED"
    assert len(children) == 12 and {c.info.status for c in children} == {"FINISHED"}
    assert {c.info.run_id for c in children} == {o["run_id"] for o in jobs.values()}
    assert sorted(int(c.data.params["seed"]) for c in children) == list(range(12))
    assert _overlapping(children)
    assert len(client.search_runs([parent.info.experiment_id])) == 13  # no duplicate, no orphan


@pytest.mark.slow
def test_submitit_local_sweep(tmp_path_factory):
    sweep = shared_sweep(tmp_path_factory, SUBMITIT_SWEEP)
    assert sweep.proc.returncode == 1, sweep.proc.stderr  # one of the two jobs raised
    client = MlflowClient(sweep.store)
    jobs = outcomes(client, parent_id(sweep.proc.stdout))
    assert sorted(jobs) == [0, 1]
    assert jobs[0]["exit_status"] == 0 and jobs[1]["exit_status"] == 1
    assert "fault injected" in jobs[1]["error"]
    assert list(sweep.sweep_dir.glob(".submitit/*/*_log.out"))  # they ran as submitit jobs

    parent, children = sweep_runs(client, parent_id(sweep.proc.stdout))
    assert parent.info.status == "FAILED" and parent.data.tags["lstm_exp.error"] == "1 of 2 jobs failed"
    assert len(children) == 2
    status = {c.info.run_id: c.info.status for c in children}
    assert status.pop(jobs[0]["run_id"]) == "FINISHED"
    assert list(status.values()) == ["FAILED"]
