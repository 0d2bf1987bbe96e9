"""Stopping a sweep stops every job it launched, and no run is rewritten after it ended.

SIGTERM goes to the sweep's launching process alone (what `kill PID` does; the jobs get nothing from
outside), under each local launcher: the process exits 143 with every job process gone and every run
KILLED. Then the jobs are released (the pause fault of tests/faults.py holds each one, its run open,
until the release file appears): a job that had outlived its sweep would now finish and end its run
FINISHED. The test waits until every process the sweep started is provably gone, and only then reads
the store. Some sweeps are started with SIGINT ignored (as `nohup`, `setsid ... &` from a script, cron
or a CI runner start them): every process they start inherits SIG_IGN, so submitit's cancel (SIGINT)
does nothing and a job that does not heed SIGTERM must be killed.
The Slurm launcher's case is in test_slurm.py.
"""

import os
import signal
import time
import uuid

import pytest
from background_cli import finish, start_cli, statuses, wait_running
from faults import RELEASE_FILE, fault_overrides
from mlflow.tracking import MlflowClient
from processes import Process, catches, ignores, with_environment

from lstm_exp.jobs.sweep import ORPHAN_REASON

MARK = "LSTM_EXP_STOP_TEST"  # in the environment of every process the sweep starts
JOB_PROCESSES = ("submitit", "LokyProcess")  # a job's process, or the controller that started it
GONE_TIMEOUT_S = 300  # for every process the sweep started to exit (a released job finishes first)


def _launched_jobs(mark: str) -> list[Process]:
    """The job processes, and their controllers, still carrying `mark`."""
    return [p for p in with_environment(mark) if any(name in p.command for name in JOB_PROCESSES)]


def _wait_gone(mark: str, timeout_s: float) -> list[Process]:
    """The processes still carrying `mark` once none is left, or `timeout_s` has passed."""
    deadline = time.monotonic() + timeout_s
    while (left := with_environment(mark)) and time.monotonic() < deadline:
        time.sleep(0.2)
    return left


LAUNCHERS = {"in-process": (("hydra/launcher=basic",), 2),
             "joblib": (("hydra/launcher=joblib", "hydra.launcher.n_jobs=2"), 3),
             "submitit_local": (("hydra/launcher=submitit_local",), 3)}


@pytest.mark.slow
@pytest.mark.parametrize("sigint", [signal.SIG_DFL, signal.SIG_IGN], ids=["sigint-default", "sigint-ignored"])
# In-process, the jobs run one after the other: the parent and job 0 are open when SIGTERM comes.
@pytest.mark.parametrize(("launcher", "runs"), LAUNCHERS.values(), ids=LAUNCHERS.keys())
def test_sigterm_stops_every_job_and_their_runs_stay_killed(tmp_path, launcher, runs, sigint):
    value = uuid.uuid4().hex
    mark = f"{MARK}={value}"
    db = tmp_path / "mlflow.db"
    proc = start_cli("-m", *launcher, "model=stacked", "seed=0,1", *fault_overrides(pause=[0, 1]),
                     f"hydra.sweep.dir={tmp_path / 's'}", cwd=tmp_path, env={MARK: value}, sigint=sigint)
    try:
        wait_running(proc, db, runs, timeout=240)
        assert proc.poll() is None and statuses(db).count("RUNNING") == runs, "the jobs never all started"
        os.kill(proc.pid, signal.SIGTERM)
        _, stderr = finish(proc, tmp_path, timeout=120)
        jobs_left = _launched_jobs(mark)
    finally:
        (tmp_path / RELEASE_FILE).touch()  # a job still alive goes on to its end: the test would see it
        left = _wait_gone(mark, GONE_TIMEOUT_S)
    assert proc.returncode == 143, stderr[-3000:]
    assert "terminated (SIGTERM)" in stderr and "Traceback" not in stderr
    assert statuses(db) == ["KILLED"] * runs  # no job came back to end its run otherwise
    assert jobs_left == [], "job processes outlived their sweep"
    assert left == [], "processes the sweep started are still running"


def _deaf_jobs(mark: str) -> list[Process]:
    return [p for p in _job_processes(mark) if ignores(p.pid, signal.SIGTERM)]


def _handling_jobs(mark: str) -> list[Process]:
    return [p for p in _job_processes(mark) if catches(p.pid, signal.SIGTERM)]


def _job_processes(mark: str) -> list[Process]:
    return [p for p in with_environment(mark) if "submitit.core._submit" in p.command]


@pytest.mark.slow
@pytest.mark.parametrize("sigint", [signal.SIG_DFL, signal.SIG_IGN], ids=["sigint-default", "sigint-ignored"])
def test_sigterm_stops_the_jobs_of_a_sweep_that_records_nothing(tmp_path, sigint):
    # No store to watch: the jobs are known to run once they catch SIGTERM (before, SIGTERM's default
    # would end them). Until their untracked run starts, it is submitit's handler, which ignores it:
    # then the job is cancelled after the grace, or, SIGINT ignored, killed with its controller (the
    # cancel left both running: the SIG_IGN case's bug).
    value = uuid.uuid4().hex
    mark = f"{MARK}={value}"
    proc = start_cli("-m", "hydra/launcher=submitit_local", "tracking.enabled=false", "seed=0,1",
                     *fault_overrides(pause=[0, 1]), f"hydra.sweep.dir={tmp_path / 's'}", cwd=tmp_path,
                     env={MARK: value}, sigint=sigint)
    try:
        deadline = time.monotonic() + 240
        while len(_handling_jobs(mark)) < 2 and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        assert proc.poll() is None and len(_handling_jobs(mark)) == 2, "the jobs never started"
        os.kill(proc.pid, signal.SIGTERM)
        _, stderr = finish(proc, tmp_path, timeout=120)
        jobs_left = _launched_jobs(mark)
    finally:
        (tmp_path / RELEASE_FILE).touch()
        left = _wait_gone(mark, GONE_TIMEOUT_S)
    assert proc.returncode == 143, stderr[-3000:]
    assert jobs_left == [], "job processes outlived their sweep"
    assert left == [], "processes the sweep started are still running"


@pytest.mark.slow
def test_a_second_sigterm_does_not_cut_the_stop_short(tmp_path):
    # `kill` twice, or a scheduler's repeated SIGTERM: the second one arrives while the sweep is still
    # stopping its jobs. Raised there, it ended the wait and the sweep exited with the jobs running.
    value = uuid.uuid4().hex
    mark = f"{MARK}={value}"
    db = tmp_path / "mlflow.db"
    proc = start_cli("-m", "hydra/launcher=submitit_local", "model=stacked", "seed=0,1",
                     *fault_overrides(pause=[0, 1]), f"hydra.sweep.dir={tmp_path / 's'}", cwd=tmp_path,
                     env={MARK: value})
    try:
        wait_running(proc, db, 3, timeout=240)
        assert proc.poll() is None and statuses(db).count("RUNNING") == 3, "the jobs never all started"
        os.kill(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + 60  # Hydra's log goes to stdout
        while ("stopping 2 submitit_local job(s)" not in (tmp_path / "stdout.txt").read_text()
               and proc.poll() is None and time.monotonic() < deadline):
            time.sleep(0.1)
        os.kill(proc.pid, signal.SIGTERM)
        _, stderr = finish(proc, tmp_path, timeout=120)
        jobs_left = _launched_jobs(mark)
    finally:
        (tmp_path / RELEASE_FILE).touch()
        left = _wait_gone(mark, GONE_TIMEOUT_S)
    assert jobs_left == [], "job processes outlived their sweep"
    assert proc.returncode == 143, stderr[-3000:]
    assert statuses(db) == ["KILLED"] * 3
    assert "SIGTERM ignored until that is done" in (tmp_path / "stdout.txt").read_text()
    assert left == [], "processes the sweep started are still running"


@pytest.mark.slow
def test_a_job_deaf_to_sigterm_is_killed_and_its_run_ended_killed_by_the_parent(tmp_path):
    # Started with SIGINT ignored: job 0 ignores SIGTERM with its run open (a job stuck where no handler
    # runs) and its controller ignores the cancel; job 1 heeds SIGTERM and ends its own run. Job 0's
    # controller and job are killed after the grace, and the parent ends its run KILLED; released, a
    # survivor would end it FINISHED.
    value = uuid.uuid4().hex
    mark = f"{MARK}={value}"
    db = tmp_path / "mlflow.db"
    proc = start_cli("-m", "hydra/launcher=submitit_local", "model=stacked", "seed=0,1",
                     *fault_overrides(pause=[1], deaf=[0]), f"hydra.sweep.dir={tmp_path / 's'}",
                     cwd=tmp_path, env={MARK: value}, sigint=signal.SIG_IGN)
    try:
        wait_running(proc, db, 3, timeout=240)
        assert proc.poll() is None and statuses(db).count("RUNNING") == 3, "the jobs never all started"
        deadline = time.monotonic() + 240  # job 0 is deaf once it ignores SIGTERM, at its pause
        while not _deaf_jobs(mark) and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        assert proc.poll() is None and len(_deaf_jobs(mark)) == 1, "job 0 never reached its deaf pause"
        os.kill(proc.pid, signal.SIGTERM)
        stdout, stderr = finish(proc, tmp_path, timeout=180)
        jobs_left = _launched_jobs(mark)
    finally:
        (tmp_path / RELEASE_FILE).touch()
        left = _wait_gone(mark, GONE_TIMEOUT_S)
    assert proc.returncode == 143, stderr[-3000:]
    assert jobs_left == [], "job processes outlived their sweep"
    assert left == [], "processes the sweep started are still running"
    assert "ignore SIGINT" in stdout and "killing them and their jobs (SIGKILL)" in stdout, stdout[-3000:]
    client = MlflowClient(f"sqlite:///{db}")
    runs = client.search_runs([client.get_experiment_by_name("lstm_exp").experiment_id])
    ends = {r.data.tags["lstm_exp.overrides"].split()[-1]: (r.info.status, r.data.tags.get("lstm_exp.error"))
            for r in runs if r.data.tags.get("lstm_exp.sweep") != "parent"}
    assert ends == {"seed=0": ("KILLED", ORPHAN_REASON),
                    "seed=1": ("KILLED", "terminated (SIGTERM: kill, scancel or a time limit)")}, ends


@pytest.mark.slow
def test_sigterm_stops_a_single_run_started_with_sigint_ignored(tmp_path):
    value = uuid.uuid4().hex
    mark = f"{MARK}={value}"
    db = tmp_path / "mlflow.db"
    proc = start_cli("model=stacked", *fault_overrides(pause=[0]), cwd=tmp_path, env={MARK: value},
                     sigint=signal.SIG_IGN)
    try:
        wait_running(proc, db, 1, timeout=240)
        assert proc.poll() is None and statuses(db) == ["RUNNING"], "the run never started"
        os.kill(proc.pid, signal.SIGTERM)
        _, stderr = finish(proc, tmp_path, timeout=120)
    finally:
        (tmp_path / RELEASE_FILE).touch()
        left = _wait_gone(mark, GONE_TIMEOUT_S)
    assert proc.returncode == 143, stderr[-3000:]
    assert left == [], "processes the run started are still running"
    assert statuses(db) == ["KILLED"]
