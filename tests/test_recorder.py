"""The recorder process of a single run: every request answered to its sender, every wait bounded.

A job that vanishes mid-run still has its run ended by the recorder; a recorder that is killed or
stopped mid-run has the run ended FAILED by the job itself, naming the recorder, with exit status 1.
The pause fault (tests/faults.py) holds the job, its run open, until the test releases it: no race on
timing.
"""

import contextlib
import os
import signal
import sqlite3
import time
from pathlib import Path

import pytest
from background_cli import finish, start_cli, statuses, wait_running
from faults import RELEASE_FILE, fault_overrides
from processes import children, wait_channel

from lstm_exp.errors import ConfigError
from lstm_exp.record.recorder import Recorder, RecorderError
from lstm_exp.record.store import TAG_PREFIX

TIMEOUT_S = 1  # tracking.timeout_s in these tests: a log request waits at most ten times that


def _recorder_of(pid: int) -> int:
    """The recorder process the job `pid` started."""
    found = children(pid, "lstm_exp.record.recorder")
    assert found, f"job {pid} has no recorder process"
    return found[0].pid


def _error_tag(db: Path) -> str:
    with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1)) as con:
        (value,) = con.execute("SELECT value FROM tags WHERE key = ?", (TAG_PREFIX + "error",)).fetchone()
    return value


def _has_error_tag(db: Path) -> bool:
    with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1)) as con:
        return con.execute("SELECT 1 FROM tags WHERE key = ?", (TAG_PREFIX + "error",)).fetchone() is not None


def _paused_run(tmp_path: Path):
    proc = start_cli("model=stacked", *fault_overrides(pause=[0]), f"tracking.timeout_s={TIMEOUT_S}",
                     cwd=tmp_path)
    wait_running(proc, tmp_path / "mlflow.db", 1)
    assert proc.poll() is None and statuses(tmp_path / "mlflow.db") == ["RUNNING"]
    return proc


@pytest.mark.slow
def test_a_killed_job_has_its_run_ended_failed_by_the_recorder(tmp_path):
    proc = _paused_run(tmp_path)
    db = tmp_path / "mlflow.db"
    recorder = _recorder_of(proc.pid)
    try:
        os.kill(proc.pid, signal.SIGKILL)  # no handler runs: only the recorder can end the run
        proc.wait(timeout=30)
        deadline = time.monotonic() + 60
        # The recorder ends the run, then tags its reason: killing it (below) in between loses the reason.
        while (statuses(db) == ["RUNNING"] or not _has_error_tag(db)) and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        finish(proc, tmp_path, timeout=10)
        with contextlib.suppress(ProcessLookupError):  # never leave it behind, even on failure
            os.kill(recorder, signal.SIGKILL)
    assert statuses(db) == ["FAILED"]
    assert _error_tag(db) == "the lstm_exp process ended during the run"


@pytest.mark.slow
@pytest.mark.parametrize("how", [signal.SIGKILL, signal.SIGSTOP], ids=["killed", "stopped"])
def test_a_recorder_lost_mid_run_ends_the_run_failed_from_the_job(tmp_path, how):
    proc = _paused_run(tmp_path)
    recorder = _recorder_of(proc.pid)
    try:
        os.kill(recorder, how)
        (tmp_path / RELEASE_FILE).touch()  # the job computes, then asks the recorder to log
        _, stderr = finish(proc, tmp_path, timeout=10 * TIMEOUT_S + 60)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(recorder, signal.SIGKILL)
    assert proc.returncode == 1, stderr
    assert statuses(tmp_path / "mlflow.db") == ["FAILED"]
    reason = _error_tag(tmp_path / "mlflow.db")
    assert reason.startswith("RecorderError: the recorder")
    assert ("killed by signal 9" if how == signal.SIGKILL else f"within {10 * TIMEOUT_S} s") in reason
    assert "RecorderError" in stderr


@pytest.mark.slow
def test_a_stale_reply_never_reaches_a_later_request(tmp_path):
    # The first request is refused (no such run) and never waited for, as after an interrupted wait;
    # the second one must get its own answer, not the first one's.
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    recorder = Recorder()
    try:
        first = recorder.send("end", uri=uri, run_id="0" * 32, status="FAILED")
        second = recorder.send("open", uri=uri, experiment="e", timeout_s=15.0, tags={}, name="mine",
                               parent=None, resume=False)
        opened = recorder.wait(second, "open", timeout_s=120)
        assert set(opened) == {"run_id", "experiment_id", "skipped"} and not opened["skipped"]
        with pytest.raises(RecorderError, match="within 1 s"):
            recorder.wait(first, "end", timeout_s=1)  # its answer was dropped as stale: none comes
    finally:
        recorder.kill()


@pytest.mark.slow
def test_a_refusal_comes_back_as_bad_input(tmp_path):
    recorder = Recorder()
    try:
        request = recorder.send("open", uri="sqlite:////proc/no-such-dir/mlflow.db",  # nothing can create it
                                experiment="e", timeout_s=15.0, tags={}, name="n", parent=None,
                                resume=False)
        with pytest.raises(ConfigError, match="tracking.uri"):
            recorder.wait(request, "open", timeout_s=120)
    finally:
        recorder.kill()


def _blocked_in_select(tid: int) -> bool:
    """Whether thread `tid` of this process sleeps in select/poll (a wait for the recorder's answer)."""
    return "poll" in wait_channel(tid)


@pytest.mark.slow
def test_ctrl_c_while_the_recorder_answers_the_open_ends_the_new_run_killed(tmp_path):
    """Ctrl-C while the job waits for the recorder's answer to `open`: the run it creates ends KILLED.

    The recorder is stopped (SIGSTOP) before the job asks, so the interrupt surely comes while the
    job waits (its main thread seen in select), before the run exists; the recorder then goes on.
    """
    import threading

    from lstm_exp.record.recorder import RecorderStore
    from lstm_exp.record.run_record import OpenRequest, RunRecord

    recorder = Recorder()
    os.kill(recorder.process.pid, signal.SIGSTOP)
    main = threading.get_native_id()

    def interrupt_the_wait():
        deadline = time.monotonic() + 60
        while not _blocked_in_select(main) and time.monotonic() < deadline:
            time.sleep(0.01)
        os.kill(os.getpid(), signal.SIGINT)  # Python hands it to the main thread, waiting in select
        os.kill(recorder.process.pid, signal.SIGCONT)

    interrupter = threading.Thread(target=interrupt_the_wait)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    # Ctrl-C's own handler, even in a suite launched with SIGINT ignored (nohup, CI), where Python
    # installs none and the SIGINT below would be lost.
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        interrupter.start()
        with pytest.raises(KeyboardInterrupt):
            RunRecord.open(RecorderStore(recorder, 30), OpenRequest(uri, "lstm_exp", 30, {}, "interrupted"))
    finally:
        interrupter.join(timeout=90)
        os.kill(recorder.process.pid, signal.SIGCONT)
        recorder.close()
        recorder.process.wait(timeout=60)
        signal.signal(signal.SIGINT, previous)
    assert statuses(tmp_path / "mlflow.db") == ["KILLED"]
    assert _error_tag(tmp_path / "mlflow.db") == "interrupted (Ctrl-C)"
