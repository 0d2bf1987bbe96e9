"""Sweeps on a real Slurm cluster (tests/slurm_cluster.py) through `hydra/launcher=slurm`, faults included.

One cluster with accounting (slurmdbd on MariaDB) and one MLflow server serve every test but the first,
which starts its own cluster without accounting, where submitit alone would never notice a lost job.
Every wait is bounded; the tests assert on what happened (statuses, reasons, arrays), never on time.
"""

import contextlib
import math
import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from conftest import error_lines, run_cli
from faults import RELEASE_FILE, fault_overrides, on_python_path
from mlflow.tracking import MlflowClient
from services import mlflow_server
from slurm_cluster import Cluster, slurm_cluster
from sweeps import read_states

import lstm_exp

# The preset, with a short grace and poll for a local filesystem and an idle test cluster.
SLURM = ("hydra/launcher=slurm", "hydra.launcher.poll_s=1", "hydra.launcher.lost_job_grace_s=5")
SMALL = ("model=stacked", "input=random")
PAUSED = "seed=1"  # the job that PAUSE_ONE holds: its overrides tag names it
PAUSE_ONE = ("seed=0,1", *fault_overrides(pause=[1]))  # job 1 holds its open run until released
SWEEP_TIMEOUT_S = 600  # one sweep on the 2-CPU test cluster, TensorFlow's start in each job included
JOB_START_TIMEOUT_S = 240  # until a job runs (and its MLflow run is open)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    with slurm_cluster(tmp_path_factory.mktemp("slurm")) as running:
        yield running


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    folder = tmp_path_factory.mktemp("mlflow")
    with mlflow_server(f"sqlite:///{folder / 'server.db'}", folder) as url:
        yield url


def tracked(url: str, experiment: str) -> tuple[str, ...]:
    return ("tracking=server", f"tracking.uri={url}", f"tracking.experiment={experiment}")


@contextlib.contextmanager
def background_sweep(cluster: Cluster, *overrides: str, launch: Path,
                     launcher: tuple[str, ...] = SLURM) -> Iterator[subprocess.Popen]:
    """`python -m lstm_exp.run -m` in the background, with Slurm's clients pointed at `cluster`.

    Its jobs inherit its environment, `faults` on PYTHONPATH included.
    """
    command = [sys.executable, "-m", "lstm_exp.run", "-m", *launcher, *overrides,
               f"hydra.sweep.dir={launch / 'sweep'}"]
    env = on_python_path({**os.environ, "PYTHONUNBUFFERED": "1", **cluster.env})
    env.pop("MLFLOW_TRACKING_URI", None)
    proc = subprocess.Popen(command, cwd=launch, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


def finish(proc: subprocess.Popen, timeout_s: float = SWEEP_TIMEOUT_S) -> subprocess.CompletedProcess:
    """The sweep's exit status and output; a sweep still waiting after `timeout_s` fails the test."""
    try:
        out, err = proc.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        pytest.fail(f"the sweep still waited after {timeout_s} s:\n{out[-3000:]}\n{err[-3000:]}")
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def sweep(cluster: Cluster, *overrides: str, launch: Path) -> subprocess.CompletedProcess:
    return run_cli("-m", *SLURM, *overrides, f"hydra.sweep.dir={launch / 'sweep'}", cwd=launch,
                   env=cluster.env, timeout=SWEEP_TIMEOUT_S)


def cancel_job(cluster: Cluster, proc: subprocess.Popen, task: int, ready=lambda: True) -> str:
    """Cancels array task `task` once squeue shows it RUNNING and `ready()` holds; returns its job id."""
    def running():
        if proc.poll() is not None:
            pytest.fail(f"the sweep ended before its job {task} could be cancelled: {proc.communicate()}")
        ids = [j["id"] for j in cluster.jobs() if j["id"].endswith(f"_{task}") and j["state"] == "RUNNING"]
        return ids[0] if ids and ready() else None

    job_id = cluster.wait_for(running, f"job {task} running", JOB_START_TIMEOUT_S)
    cluster.command("scancel", job_id)
    return job_id


def sweep_children(client: MlflowClient, experiment: str) -> tuple:
    """(the experiment's latest parent run, its child runs keyed by their overrides tag)."""
    exp = client.get_experiment_by_name(experiment)
    parent = client.search_runs([exp.experiment_id], "tags.`lstm_exp.sweep` = 'parent'",
                                order_by=["attributes.start_time DESC"], max_results=1)[0]
    children = client.search_runs([exp.experiment_id], f"tags.mlflow.parentRunId = '{parent.info.run_id}'",
                                  max_results=500)
    return parent, {c.data.tags["lstm_exp.overrides"]: c for c in children}


def job_errors(proc: subprocess.CompletedProcess) -> dict[int, str]:
    """Job number -> the sweeper's `error: job N: ...` line."""
    found = {}
    for line in error_lines(proc):
        match = re.match(r"error: job (\d+)\b.*?: (.*)", line)
        if match:
            found[int(match.group(1))] = match.group(2)
    return found


@pytest.mark.slow
@pytest.mark.service
def test_without_accounting_a_cancelled_job_is_reported_not_awaited(tmp_path):
    # submitit alone asks sacct, which knows nothing here, and would wait for job 1 forever.
    with slurm_cluster(tmp_path / "cluster", accounting=False) as bare:
        launch = tmp_path / "launch"
        launch.mkdir()
        # Job 1 is held by the pause fault until it is cancelled (no release file).
        with background_sweep(bare, *SMALL, "tracking.enabled=false", *PAUSE_ONE, launch=launch) as proc:
            job_id = cancel_job(bare, proc, 1)
            done = finish(proc)
    assert done.returncode == 1, done.stderr[-3000:]
    errors = job_errors(done)
    assert list(errors) == [1], done.stderr[-3000:]
    print(f"no-accounting cancelled job: {errors[1]}")
    assert f"Slurm job {job_id} " in errors[1]
    assert "left the queue without a result" in errors[1] or "ended without a result" in errors[1]
    assert "1 failed" in done.stdout


@pytest.mark.slow
@pytest.mark.service
def test_sweep_of_eight_jobs_matches_the_jobs_run_in_process(cluster, server, tmp_path):
    done = sweep(cluster, *SMALL, "seed=range(0,8)", *tracked(server, "slurm_sweep"), launch=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    client = MlflowClient(server)
    parent, children = sweep_children(client, "slurm_sweep")
    assert parent.info.status == "FINISHED"
    assert len(children) == 8
    for overrides, child in children.items():
        assert child.info.status == "FINISHED", overrides
        job = [o for o in overrides.split() if not o.startswith(("hydra", "tracking"))]
        expected = lstm_exp.execute(lstm_exp.compose("tracking.enabled=false", *job)).arrays
        logged = read_states(client, child.info.run_id, tmp_path / child.info.run_id)
        assert set(logged) == set(expected), overrides
        for name, array in expected.items():
            assert np.array_equal(logged[name], np.asarray(array)), f"{overrides}: {name}"


def cancelled_run_line(client: MlflowClient) -> str:
    """Status and reason of the cancelled job's run, for the test's output."""
    _, children = sweep_children(client, "slurm_cancel")
    return "; ".join(f"{c.info.status} {c.data.tags.get('lstm_exp.error')}" for o, c in children.items()
                     if PAUSED in o.split())


# Long enough to be cancelled while its run is open, short enough to run to its end when resumed.
# Job 1 holds its open run (the pause fault) until a release file appears in its launch directory:
# it is surely running when cancelled, whatever the machine's load.
RESUMABLE = PAUSE_ONE


@pytest.mark.slow
@pytest.mark.service
def test_a_cancelled_job_ends_its_run_and_the_sweep_and_resume_runs_only_it(cluster, server, tmp_path):
    client = MlflowClient(server)
    overrides = (*SMALL, *RESUMABLE, *tracked(server, "slurm_cancel"))

    def computing():  # job 0 is done, job 1's run is open: it waits for the release that never comes
        exp = client.get_experiment_by_name("slurm_cancel")
        runs = client.search_runs([exp.experiment_id], "tags.mlflow.parentRunId LIKE '%'") if exp else []
        status = {(PAUSED in run.data.tags["lstm_exp.overrides"].split()): run.info.status
                  for run in runs}
        return status == {False: "FINISHED", True: "RUNNING"}

    with background_sweep(cluster, *overrides, launch=tmp_path) as proc:
        job_id = cancel_job(cluster, proc, 1, computing)
        done = finish(proc)
    assert done.returncode == 1, done.stderr[-3000:]
    assert list(job_errors(done)) == [1], done.stderr[-3000:]
    print(f"cancelled job: {job_errors(done)[1]}; its run: {cancelled_run_line(client)}")
    assert f"Slurm job {job_id} " in job_errors(done)[1]
    parent, children = sweep_children(client, "slurm_cancel")
    assert parent.info.status == "FAILED"
    statuses = {(PAUSED in o.split()): c.info.status for o, c in children.items()}
    assert statuses[False] == "FINISHED"
    cancelled = next(c for o, c in children.items() if PAUSED in o.split())
    assert cancelled.info.status in ("KILLED", "FAILED"), cancelled.data.tags.get("lstm_exp.error")
    assert "forward_ms" not in cancelled.data.metrics  # no partial work recorded as done

    (tmp_path / "resume").mkdir()
    (tmp_path / "resume" / RELEASE_FILE).touch()  # this time job 1 may go on
    resumed = sweep(cluster, *overrides, "resume=true", launch=tmp_path / "resume")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    parent, children = sweep_children(client, "slurm_cancel")
    assert parent.info.status == "FINISHED"
    # Job 0 was skipped (its FINISHED run has the same config and code_version, which hashes the sources).
    versions = {o: c.data.tags.get("lstm_exp.code_version") for o, c in children.items()}
    assert [c.info.status for c in children.values()] == ["FINISHED"], versions
    assert PAUSED in next(iter(children)).split()


@pytest.mark.slow
@pytest.mark.service
@pytest.mark.parametrize("launcher", [
    pytest.param(SLURM, id="slurm"),
    # The plugin's own launcher: its launch keeps the job handles, so the sweep goes through ours.
    pytest.param(("hydra/launcher=submitit_slurm",), id="submitit_slurm"),
])
def test_sigterm_to_the_sweep_cancels_its_job_array_and_every_run_ends_killed(cluster, server, tmp_path,
                                                                               launcher):
    # Both jobs hold their open runs (the pause fault, no release file) until they are stopped.
    client = MlflowClient(server)
    experiment = f"slurm_stop_{launcher[0].rsplit('=', 1)[1]}"

    def both_running():
        if proc.poll() is not None:
            pytest.fail(f"the sweep ended before it could be stopped: {proc.communicate()}")
        exp = client.get_experiment_by_name(experiment)
        runs = client.search_runs([exp.experiment_id], "tags.mlflow.parentRunId LIKE '%'") if exp else []
        return [run.info.status for run in runs] == ["RUNNING", "RUNNING"]

    overrides = (*SMALL, "seed=0,1", *fault_overrides(pause=[0, 1]), *tracked(server, experiment))
    with background_sweep(cluster, *overrides, launch=tmp_path, launcher=launcher) as proc:
        cluster.wait_for(both_running, "both jobs' runs open", JOB_START_TIMEOUT_S)
        proc.send_signal(signal.SIGTERM)  # to the submitting process alone; the jobs get nothing from us
        done = finish(proc)
    assert done.returncode == 143, done.stderr[-3000:]
    assert cluster.jobs() == []  # the array was cancelled, and the sweep waited until it left the queue
    (tmp_path / RELEASE_FILE).touch()  # had a job outlived the sweep, it would now finish its run
    parent, children = sweep_children(client, experiment)
    assert parent.info.status == "KILLED"
    assert [c.info.status for c in children.values()] == ["KILLED", "KILLED"], \
        [c.data.tags.get("lstm_exp.error") for c in children.values()]


@pytest.mark.slow
@pytest.mark.service
def test_a_job_that_fails_fails_alone(cluster, server, tmp_path):
    done = sweep(cluster, *SMALL, "seed=0,1", *fault_overrides(forward=[1]),
                 *tracked(server, "slurm_fault"), launch=tmp_path)
    assert done.returncode == 1, done.stderr[-3000:]
    _, children = sweep_children(MlflowClient(server), "slurm_fault")
    assert len(children) == 2
    for overrides, child in children.items():
        if "seed=1" in overrides.split():
            assert child.info.status == "FAILED"
            assert "fault injected" in child.data.tags["lstm_exp.error"]
        else:
            assert child.info.status == "FINISHED", overrides


@pytest.mark.slow
@pytest.mark.service
def test_a_job_past_its_time_limit_is_reported_so(cluster, server, tmp_path):
    # No early USR2 (the preset's signal_delay_s=0): Slurm stops the job at its limit, SIGTERM then SIGKILL.
    # Job 1 is held by the pause fault (no release file: it would wait 300 s), so it is past
    # its one-minute limit however fast the machine computes.
    done = sweep(cluster, *SMALL, *PAUSE_ONE, "hydra.launcher.timeout_min=1",
                 *tracked(server, "slurm_timeout"), launch=tmp_path)
    assert done.returncode == 1, done.stderr[-3000:]
    errors = job_errors(done)
    assert list(errors) == [1], done.stdout[-3000:] + done.stderr[-3000:]
    print(f"time-limit job: {errors[1]}")
    assert re.search(r"timed-out|TIMEOUT|time limit", errors[1]), errors[1]
    _, children = sweep_children(MlflowClient(server), "slurm_timeout")
    for overrides, child in children.items():
        expected = ("FAILED", "KILLED") if PAUSED in overrides.split() else ("FINISHED",)
        assert child.info.status in expected, (overrides, child.data.tags.get("lstm_exp.error"))


def test_the_preset_composes_with_its_knobs():
    cfg = lstm_exp.compose("hydra/launcher=slurm", "hydra.launcher.partition=cpu",
                           "hydra.launcher.timeout_min=30", "hydra.launcher.cpus_per_task=2",
                           "hydra.launcher.mem_gb=8", "hydra.launcher.lost_job_grace_s=120",
                           return_hydra_config=True)
    assert cfg.hydra.launcher._target_.endswith("LstmExpSlurmLauncher")
    assert (cfg.hydra.launcher.partition, cfg.hydra.launcher.lost_job_grace_s) == ("cpu", 120)



@pytest.mark.slow
@pytest.mark.service
def test_a_small_search_on_two_slurm_workers(cluster, server, tmp_path):
    done = sweep(cluster, "hydra/sweeper=search", "task=adding", "task.epochs=2", "task.train_size=64",
                 "task.val_size=32", "model.units=[4]", "task.learning_rate=0.05,0.01",
                 "hydra.sweeper.n_trials=2", "hydra.sweeper.n_workers=2", "hydra.sweeper.seed=0",
                 *tracked(server, "slurm_search"), launch=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    import optuna

    from lstm_exp.jobs.study import open_storage

    storage = open_storage(str(tmp_path / "optuna_journal.log"))  # a server store: the launch directory
    study = optuna.load_study(study_name=optuna.get_all_study_names(storage)[0], storage=storage)
    assert [t.state.name for t in study.trials] == ["COMPLETE", "COMPLETE"]
    parent, children = sweep_children(MlflowClient(server), "slurm_search")
    assert parent.info.status == "FINISHED" and len(children) == 2
    for child in children.values():
        assert child.info.status == "FINISHED" and child.data.tags["lstm_exp.trial_state"] == "COMPLETE"
        trial = study.trials[int(child.data.tags["lstm_exp.trial"])]
        assert math.isclose(trial.value, child.data.metrics["val_loss"], rel_tol=1e-9)


@pytest.mark.slow
@pytest.mark.service
def test_sigterm_to_a_two_worker_search_cancels_every_trial_job(cluster, server, tmp_path):
    # Signals reach the search's main thread only; each worker thread waits on its own job array.
    client = MlflowClient(server)
    experiment = "slurm_search_stop"

    def both_running():
        if proc.poll() is not None:
            pytest.fail(f"the search ended before it could be stopped: {proc.communicate()}")
        exp = client.get_experiment_by_name(experiment)
        runs = client.search_runs([exp.experiment_id], "tags.mlflow.parentRunId LIKE '%'") if exp else []
        return [run.info.status for run in runs] == ["RUNNING", "RUNNING"]

    overrides = ("hydra/sweeper=search", "task=adding", "task.epochs=1", "task.train_size=64",
                 "task.val_size=32", "model.units=[4]", "task.learning_rate=0.05,0.01",
                 "hydra.sweeper.n_trials=2", "hydra.sweeper.n_workers=2", "hydra.sweeper.seed=0",
                 *fault_overrides(pause=[0]), *tracked(server, experiment))
    with background_sweep(cluster, *overrides, launch=tmp_path) as proc:
        cluster.wait_for(both_running, "both trials' runs open", JOB_START_TIMEOUT_S)
        proc.send_signal(signal.SIGTERM)
        done = finish(proc)
    assert done.returncode == 143, done.stderr[-3000:]
    assert cluster.jobs() == []  # each worker cancelled its array and waited until it left the queue
    (tmp_path / RELEASE_FILE).touch()  # had a job outlived the search, it would now finish its run
    exp = client.get_experiment_by_name(experiment).experiment_id
    runs = client.search_runs([exp])  # two trials may share their sampled overrides: not keyed by them
    assert sorted(r.info.status for r in runs) == ["KILLED"] * 3
    import optuna

    from lstm_exp.jobs.study import open_storage

    storage = open_storage(str(tmp_path / "optuna_journal.log"))
    study = optuna.load_study(study_name=optuna.get_all_study_names(storage)[0], storage=storage)
    assert [t.state.name for t in study.trials] == ["FAIL", "FAIL"]
