"""Stopping a search with parallel workers stops every job its workers launched.

SIGTERM reaches the search's main thread only; each worker thread waits in its own launch. Two workers
on submitit_local (and on joblib, whose workers the search kills), each trial's job held at its pause
(tests/faults.py) with its run open: SIGTERM to the search's process alone. It exits 143; no controller
or job process is left; every run is KILLED and no Optuna trial RUNNING. Then the jobs would be
released: a job that had outlived its search would end its run FINISHED. The Slurm case is in
test_slurm.py (its cluster fixture lives there).

SIGKILL to the search's process instead (nothing in it can stop anything): its joblib workers notice
their parent is gone (jobs/orphan_watch.py), stop their jobs, whose runs end KILLED, and exit.
"""

import os
import signal
import time
import uuid

import optuna
import pytest
from background_cli import finish, start_cli, statuses, wait_running
from faults import RELEASE_FILE, fault_overrides
from processes import with_environment

TINY = ("task=adding", "task.epochs=2", "task.train_size=64", "task.val_size=32", "model.units=[4]")
MARK = "LSTM_EXP_SEARCH_STOP_TEST"  # in the environment of every process the search starts
START_TIMEOUT_S = 600  # both trials' jobs at their pause, TensorFlow's start in each, on a loaded machine
GONE_TIMEOUT_S = 300
JOB_PROCESSES = ("submitit", "LokyProcess")  # a job's process, or the controller that started it


def _wait_gone(mark: str, timeout_s: float) -> list:
    deadline = time.monotonic() + timeout_s
    while (left := with_environment(mark)) and time.monotonic() < deadline:
        time.sleep(0.2)
    return left


@pytest.mark.slow
@pytest.mark.parametrize("sigint", [signal.SIG_DFL, signal.SIG_IGN], ids=["sigint-default", "sigint-ignored"])
@pytest.mark.parametrize("launcher", [
    pytest.param(("hydra/launcher=submitit_local",), id="submitit_local"),
    pytest.param(("hydra/launcher=joblib", "hydra.launcher.n_jobs=2"), id="joblib"),
])
def test_sigterm_stops_a_two_worker_search(tmp_path, launcher, sigint):
    value = uuid.uuid4().hex
    mark = f"{MARK}={value}"
    db = tmp_path / "mlflow.db"
    proc = start_cli("-m", "hydra/sweeper=search", *launcher, *TINY,
                     "hydra.sweeper.n_workers=2", "hydra.sweeper.n_trials=4", "hydra.sweeper.seed=0",
                     "task.learning_rate=0.05,0.01", *fault_overrides(pause=[0]),
                     f"hydra.sweep.dir={tmp_path / 's'}", cwd=tmp_path, env={MARK: value}, sigint=sigint)
    try:
        wait_running(proc, db, 3, timeout=START_TIMEOUT_S)  # the parent and both trials' runs
        assert proc.poll() is None and statuses(db).count("RUNNING") == 3, "the trials never both started"
        os.kill(proc.pid, signal.SIGTERM)
        stdout, stderr = finish(proc, tmp_path, timeout=GONE_TIMEOUT_S)
        jobs_left = [p for p in with_environment(mark) if any(name in p.command for name in JOB_PROCESSES)]
    finally:
        (tmp_path / RELEASE_FILE).touch()  # a job still alive goes on to its end: the store would show it
        left = _wait_gone(mark, GONE_TIMEOUT_S)
    assert proc.returncode == 143, stderr[-3000:]
    assert jobs_left == [], "job processes outlived their search"
    assert left == [], "processes the search started are still running"
    assert statuses(db) == ["KILLED"] * 3
    from lstm_exp.jobs.study import open_storage

    storage = open_storage(str(tmp_path / "optuna_journal.log"))
    study = optuna.load_study(study_name=optuna.get_all_study_names(storage)[0], storage=storage)
    assert [t.state.name for t in study.trials] == ["FAIL", "FAIL"], stdout[-3000:]


ORPHANS_GONE_TIMEOUT_S = 120  # the watchers poll once a second; each job then ends its run and exits


@pytest.mark.slow
def test_joblib_workers_of_a_killed_search_stop_their_jobs_and_exit(tmp_path):
    value = uuid.uuid4().hex
    mark = f"{MARK}={value}"
    db = tmp_path / "mlflow.db"
    proc = start_cli("-m", "hydra/sweeper=search", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", *TINY,
                     "hydra.sweeper.n_workers=2", "hydra.sweeper.n_trials=4", "hydra.sweeper.seed=0",
                     "task.learning_rate=0.05,0.01", *fault_overrides(pause=[0]),
                     f"hydra.sweep.dir={tmp_path / 's'}", cwd=tmp_path, env={MARK: value})
    try:
        wait_running(proc, db, 3, timeout=START_TIMEOUT_S)  # the parent and both trials' runs
        assert proc.poll() is None and statuses(db).count("RUNNING") == 3, "the trials never both started"
        workers = [p for p in with_environment(mark) if "LokyProcess" in p.command]
        os.kill(proc.pid, signal.SIGKILL)  # the search's process alone, as the OOM killer would
        proc.wait(timeout=60)
        left = _wait_gone(mark, ORPHANS_GONE_TIMEOUT_S)
    finally:
        (tmp_path / RELEASE_FILE).touch()  # a worker still alive finishes its job: the store would show it
        _wait_gone(mark, GONE_TIMEOUT_S)
        finish(proc, tmp_path, timeout=60)
    assert len(workers) == 2, workers
    assert left == [], "processes the killed search started are still running"
    # The trials' runs ended KILLED by their own jobs; the parent stays RUNNING (a killed process ends
    # nothing; `resume=true` ends it, see test_search.py).
    assert sorted(statuses(db)) == ["KILLED", "KILLED", "RUNNING"]
