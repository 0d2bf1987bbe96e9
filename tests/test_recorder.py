"""The recorder process: a job that vanishes mid-run still leaves its run ended, never RUNNING."""

import os
import signal
import time

from test_faults import _start_cli, _statuses, _wait_running


def test_a_killed_job_has_its_run_ended_failed_by_the_recorder(tmp_path):
    proc = _start_cli("input=random", "input.batch=16", "input.timesteps=2000", "input.features=8",
                      cwd=tmp_path)
    db = tmp_path / "mlflow.db"
    try:
        _wait_running(proc, db, 1)
        assert proc.poll() is None, "the run ended before the job could be killed"
        os.kill(proc.pid, signal.SIGKILL)  # no handler runs: only the recorder can end the run
        proc.wait(timeout=30)
        deadline = time.monotonic() + 30
        while _statuses(db) == ["RUNNING"] and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert _statuses(db) == ["FAILED"]


def test_a_sweep_in_one_process_records_every_job(tmp_path):
    # Jobs after the first reuse the recorder the first one started.
    proc = _start_cli("-m", "seed=0,1,2", cwd=tmp_path)
    proc.wait(timeout=300)
    assert proc.returncode == 0, (tmp_path / "stderr.txt").read_text()
    assert sorted(_statuses(tmp_path / "mlflow.db")) == ["FINISHED"] * 4  # the parent and 3 jobs
