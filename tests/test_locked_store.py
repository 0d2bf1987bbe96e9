"""A SQLite store that another process holds locked: the run waits quietly within `tracking.timeout_s`,
and past it ends in one line naming the store, with no run left behind."""

import contextlib
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import error_lines, run_cli
from mlflow.tracking import MlflowClient
from processes import holding_open

pytestmark = pytest.mark.slow

# SQLite's locks: EXCLUSIVE keeps every other connection out, reads included; IMMEDIATE lets others
# read but not write (what another MLflow client writing a batch does).
MODES = ["EXCLUSIVE", "IMMEDIATE"]
# Past MLflow's SQLite busy timeout (20 s): the run's statement fails with "database is locked" at
# least once while the lock is held, rather than only waiting inside SQLite.
HOLD_AFTER_CONTACT_S = 25
CONTACT_TIMEOUT_S = 240  # the run's process imports MLflow before it touches the store
HOLDER = """
import sqlite3, sys
db = sqlite3.connect(sys.argv[1], isolation_level=None)
db.execute("BEGIN " + sys.argv[2])
print("locked", flush=True)
sys.stdin.readline()  # the test's word, or the end of its pipe
db.execute("ROLLBACK")
"""


@contextlib.contextmanager
def lock_held(path: Path, mode: str):
    """Another process holding a SQLite lock on `path` until the block ends (or `release` is called)."""
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(path), mode], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        yield holder
    finally:
        release(holder)


def release(holder: subprocess.Popen) -> None:
    if holder.poll() is None:
        holder.stdin.close()
        holder.wait(timeout=30)


def store_with_experiment(folder: Path) -> tuple[Path, MlflowClient]:
    path = folder / "mlflow.db"
    client = MlflowClient(f"sqlite:///{path}")
    client.create_experiment("lstm_exp")
    return path, client


def wait_for_contact(path: Path, holder: subprocess.Popen, run: subprocess.Popen) -> None:
    deadline = time.monotonic() + CONTACT_TIMEOUT_S
    while not [pid for pid in holding_open(path) if pid != holder.pid]:
        assert run.poll() is None, "the run ended before it reached the store"
        assert time.monotonic() < deadline, f"no process opened {path} within {CONTACT_TIMEOUT_S} s"
        time.sleep(0.1)


def start_run_cli(*args: str, cwd: Path) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    return subprocess.Popen([sys.executable, "-m", "lstm_exp.run", *args], cwd=cwd, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


@pytest.mark.parametrize("mode", MODES)
def test_a_lock_released_within_the_timeout_is_waited_out_quietly(tmp_path, mode):
    path, client = store_with_experiment(tmp_path)
    with lock_held(path, mode) as holder:
        run = start_run_cli("tracking.timeout_s=300", cwd=tmp_path)
        try:
            wait_for_contact(path, holder, run)
            time.sleep(HOLD_AFTER_CONTACT_S)  # see HOLD_AFTER_CONTACT_S: the lock must outlast SQLite's wait
            release(holder)
            out, err = run.communicate(timeout=600)
        finally:
            if run.poll() is None:
                run.kill()
                run.wait()
    assert run.returncode == 0, err
    assert err == ""  # no "database is locked" traceback, not a line
    (found,) = client.search_runs([client.get_experiment_by_name("lstm_exp").experiment_id])
    assert found.info.status == "FINISHED" and found.info.run_id in out


@pytest.mark.parametrize("mode", MODES)
def test_a_lock_held_past_the_timeout_ends_in_one_line_and_no_run(tmp_path, mode):
    path, client = store_with_experiment(tmp_path)
    with lock_held(path, mode):
        proc = run_cli("tracking.timeout_s=3", cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert error_lines(proc) == [
        "error: tracking.uri must be a store that no other process holds locked (another process held a "
        "lock on it for all of tracking.timeout_s=3 s; retry when it is done, or raise "
        f"tracking.timeout_s). Received: tracking.uri='sqlite:///{path}'"]
    experiment = client.get_experiment_by_name("lstm_exp").experiment_id
    assert client.search_runs([experiment]) == []  # none was created, so none is left RUNNING


# Holds the lock file that lstm_exp processes take while they open a SQLite store, as a process stopped
# (Ctrl-Z) or wedged in its opening would, until its stdin closes.
LOCK_FILE_HOLDER = """
import fcntl, sys
handle = open(sys.argv[1], "a")
fcntl.flock(handle, fcntl.LOCK_EX)
print("locked", flush=True)
sys.stdin.readline()
"""


def test_a_lock_file_held_past_the_timeout_ends_in_one_line_and_no_run(tmp_path):
    path, client = store_with_experiment(tmp_path)
    holder = subprocess.Popen([sys.executable, "-c", LOCK_FILE_HOLDER, f"{path}.lock"], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        proc = run_cli("tracking.timeout_s=3", cwd=tmp_path, timeout=120)  # it waited forever before
    finally:
        release(holder)
    assert proc.returncode == 2, proc.stderr
    (line,) = error_lines(proc)
    assert line.startswith("error: tracking.uri must be a store that no other process holds locked")
    experiment = client.get_experiment_by_name("lstm_exp").experiment_id
    assert client.search_runs([experiment]) == []


def test_a_folder_given_as_the_store_is_one_line_at_once(tmp_path):
    # Not a lock, but the same flood: MLflow retried opening the folder for ~100 s, one warning each time.
    folder = tmp_path / "runs"
    folder.mkdir()
    proc = run_cli(f"tracking.uri=sqlite:///{folder}", cwd=tmp_path, timeout=60)
    assert proc.returncode == 2, proc.stderr
    assert error_lines(proc) == [
        "error: tracking.uri must be a SQLite database file, or a path where one can be made (that path is a "
        f"folder). Received: tracking.uri='sqlite:///{folder}'"]
    assert list(folder.iterdir()) == []
