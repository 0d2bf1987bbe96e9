"""`kill_tree` kills a process and everything it started, whatever they do with signals.

The tree stands in for a submitit_local job started with SIGINT and SIGTERM ignored: a controller
(`sh`), its job, and the job's own child in another process group and session (as the native build
runs its compiler). Real processes, found through tests/processes.py.
"""

import contextlib
import os
import signal
import subprocess
import time
import uuid

from processes import children, with_environment

from lstm_exp.jobs import process_tree

# controller -> job -> a child in its own session; every one of them ignores SIGINT and SIGTERM.
TREE = "trap '' INT TERM; sh -c \"trap '' INT TERM; setsid sleep 300 & sleep 300\" & wait"
START_TIMEOUT_S = 30


def test_kill_tree_kills_a_deaf_controller_its_job_and_the_jobs_child(tmp_path):
    value = uuid.uuid4().hex
    mark = f"LSTM_EXP_TREE_TEST={value}"
    root = subprocess.Popen(["sh", "-c", TREE], env={"LSTM_EXP_TREE_TEST": value, "PATH": "/usr/bin:/bin"},
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while len(with_environment(mark)) < 4 and time.monotonic() < deadline:
            time.sleep(0.05)
        started = {p.pid for p in with_environment(mark)}  # sh, sh, setsid's sleep, sleep
        assert len(started) == 4 and len(children(root.pid)) == 1, with_environment(mark)
        assert all(process_tree.ignores(root.pid, number) for number in (signal.SIGINT, signal.SIGTERM))
        killed = process_tree.kill_tree(root.pid)
        assert killed[0] == root.pid and set(killed) == started
        assert root.wait(timeout=30) == -signal.SIGKILL
        assert process_tree.wait_gone(killed, 30) == []
        assert with_environment(mark) == []
    finally:
        for p in with_environment(mark):  # a regression's leftovers go with the test
            with contextlib.suppress(ProcessLookupError):
                os.kill(p.pid, signal.SIGKILL)
        root.wait(timeout=30)
