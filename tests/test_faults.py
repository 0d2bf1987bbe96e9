"""Faults: a tracking server that is not there, or goes away mid-sweep; Ctrl-C during a run; one job
of a parallel sweep raising; a worker killed. Each ends with a clear exit status, every failure says
why, and no run is left RUNNING where the process that owns it is still alive to end it.
"""

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time

import pytest
import requests
from background_cli import finish, start_cli, statuses, wait_running
from conftest import error_lines
from faults import RELEASE_FILE, fault_overrides
from mlflow.tracking import MlflowClient
from processes import children
from services import free_port, mlflow_server
from sweeps import HTTP_TIMEOUT_S, outcomes, parent_id, run_sweep, sweep_runs

# Runs main() and, at exit, writes which heavy libraries it imported to $IMPORT_PROBE.
PROBE = (
    "import atexit, os, sys\n"
    "atexit.register(lambda: open(os.environ['IMPORT_PROBE'], 'w').write(' '.join(\n"
    "    m for m in ('tensorflow', 'keras', 'mlflow') if m in sys.modules)))\n"
    "from lstm_exp.cli.run import main\n"
    "main()\n"
)


def _probe_cli(*args: str, cwd) -> tuple[subprocess.CompletedProcess, float, str]:
    """The CLI through PROBE: (process, wall seconds, heavy modules it imported)."""
    probe = cwd / "imported.txt"
    env = {**os.environ, "IMPORT_PROBE": str(probe)}
    env.pop("MLFLOW_TRACKING_URI", None)
    start = time.monotonic()
    proc = subprocess.run([sys.executable, "-c", PROBE, *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=120)
    return proc, time.monotonic() - start, probe.read_text()


@pytest.mark.parametrize("sweep", [False, True], ids=["run", "sweep"])
def test_unreachable_server_exits_2_before_any_computation(tmp_path, sweep):
    uri = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    # What proves "before any computation": the process never imported TensorFlow or MLflow.
    args = ["-m", "seed=0,1", f"hydra.sweep.dir={tmp_path / 'sweep'}"] if sweep else []
    proc, seconds, imported = _probe_cli(*args, "model=stacked", "tracking=server",
                                         f"tracking.uri={uri}", cwd=tmp_path)
    print(f"unreachable server: exit {proc.returncode} after {seconds:.2f} s")
    assert proc.returncode == 2
    (line,) = error_lines(proc)
    assert "tracking.uri" in line and uri in line and "Traceback" not in proc.stderr
    assert imported == "" and "reference check" not in proc.stdout  # no TensorFlow, no MLflow
    assert not list(tmp_path.glob("sweep/*/.hydra"))  # no job was launched


def test_silent_server_is_given_up_after_timeout_s(tmp_path):
    # Accepts connections (the kernel's backlog) but never answers a request.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        uri = f"http://127.0.0.1:{silent.getsockname()[1]}"
        proc, seconds, imported = _probe_cli("tracking=server", f"tracking.uri={uri}",
                                             "tracking.timeout_s=2", cwd=tmp_path)
    print(f"silent server: exit {proc.returncode} after {seconds:.2f} s")
    assert proc.returncode == 2
    (line,) = error_lines(proc)
    assert uri in line and "within 2 s" in line  # it gave up on tracking.timeout_s, not on its own
    assert imported == ""


@pytest.mark.slow
@pytest.mark.parametrize("sweep", [
    pytest.param([], id="run"),
    pytest.param(["-m", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", "seed=0,1"], id="joblib-sweep",
                 marks=pytest.mark.slow),
])
def test_ctrl_c_ends_every_run_killed(tmp_path, sweep):
    # The pause fault holds each job with its run open (no release file is ever written), so the
    # interrupt surely comes while the runs are RUNNING, however fast the machine computes. start_cli
    # gives the CLI Ctrl-C's default even if this suite was launched with SIGINT ignored.
    proc = start_cli(*sweep, "model=stacked", *fault_overrides(pause=[0, 1]),
                     f"hydra.sweep.dir={tmp_path / 's'}", cwd=tmp_path)
    runs = 3 if sweep else 1  # a sweep's parent and its two jobs
    try:
        wait_running(proc, tmp_path / "mlflow.db", runs)
        assert proc.poll() is None, "the run ended before it could be interrupted"
        os.killpg(proc.pid, signal.SIGINT)  # a terminal's Ctrl-C: the whole foreground group
        sent = time.monotonic()
    finally:
        _, stderr = finish(proc, tmp_path, timeout=60)
    print(f"Ctrl-C: exit {proc.returncode} {time.monotonic() - sent:.1f} s after SIGINT")
    assert proc.returncode == 130, stderr
    assert "interrupted" in stderr and "Traceback" not in stderr
    assert statuses(tmp_path / "mlflow.db") == ["KILLED"] * runs
    if not sweep:
        client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
        (run,) = client.search_runs([client.get_experiment_by_name("lstm_exp").experiment_id])
        assert run.data.tags["lstm_exp.error"] == "interrupted (Ctrl-C)"


@pytest.mark.slow
def test_one_failing_job_of_a_parallel_sweep_fails_alone(tmp_path):
    sweep_dir = tmp_path / "sweep"
    proc = run_sweep("hydra/launcher=joblib", "hydra.launcher.n_jobs=2", "seed=0,1,2,3",
                     *fault_overrides(forward=[1, 3]), cwd=tmp_path, sweep_dir=sweep_dir)
    assert proc.returncode == 1, proc.stderr
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    jobs = outcomes(client, parent_id(proc.stdout))
    failed = {n for n, o in jobs.items() if o["exit_status"]}
    assert len(jobs) == 4 and len(failed) == 2
    assert all("fault injected" in jobs[n]["error"] for n in failed)
    assert all(f"error: job {n} " in proc.stderr for n in failed)  # each reason on stderr as it happens
    parent, children = sweep_runs(client, parent_id(proc.stdout))
    assert parent.info.status == "FAILED"
    assert parent.data.tags["lstm_exp.error"] == "2 of 4 jobs failed"
    by_status = {}
    for child in children:
        by_status.setdefault(child.info.status, []).append(child)
    assert {s: len(r) for s, r in by_status.items()} == {"FINISHED": 2, "FAILED": 2}
    failed_seeds = sorted(o for r in by_status["FAILED"] for o in r.data.tags["lstm_exp.overrides"].split()
                          if o.startswith("seed="))
    assert failed_seeds == ["seed=1", "seed=3"]
    assert all("fault injected" in r.data.tags["lstm_exp.error"] for r in by_status["FAILED"])


def _loky_workers(parent: int) -> list[int]:
    """The joblib (loky) worker processes started by process `parent`."""
    return [p.pid for p in children(parent, "LokyProcess")]


@pytest.mark.slow
def test_a_killed_worker_leaves_no_run_running(tmp_path):
    # What the OS does to a job that takes too much memory: SIGKILL, mid-run.
    proc = start_cli("-m", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", "seed=0,1", "input=random",
                     "input.batch=16", "input.timesteps=3000", "input.features=8",
                     f"hydra.sweep.dir={tmp_path / 's'}", cwd=tmp_path)
    try:
        wait_running(proc, tmp_path / "mlflow.db", 3, timeout=180)  # the parent and both jobs
        workers = _loky_workers(proc.pid)
        assert proc.poll() is None and workers, "the jobs ended before a worker could be killed"
        os.kill(workers[0], signal.SIGKILL)
    finally:
        _, stderr = finish(proc, tmp_path, timeout=120)
    assert proc.returncode == 1
    assert "TerminatedWorkerError" in stderr
    assert "RUNNING" not in statuses(tmp_path / "mlflow.db")
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiment_id = client.get_experiment_by_name("lstm_exp").experiment_id
    (parent,) = client.search_runs([experiment_id], "tags.`lstm_exp.sweep` = 'parent'")
    parent, children = sweep_runs(client, parent.info.run_id)
    assert parent.info.status == "FAILED" and "TerminatedWorkerError" in parent.data.tags["lstm_exp.error"]
    assert len(children) == 2


def _children(url: str) -> list[dict]:
    """Every child run on the server, over REST."""
    exp = requests.get(f"{url}/api/2.0/mlflow/experiments/get-by-name",
                       params={"experiment_name": "lstm_exp"}, timeout=HTTP_TIMEOUT_S)
    if exp.status_code != 200:
        return []
    found = requests.post(f"{url}/api/2.0/mlflow/runs/search", timeout=HTTP_TIMEOUT_S, json={
        "experiment_ids": [exp.json()["experiment"]["experiment_id"]], "max_results": 100,
        "filter": "tags.mlflow.parentRunId != ''"}).json()
    return found.get("runs", [])


def _finished(url: str) -> int:
    return sum(r["info"]["status"] == "FINISHED" for r in _children(url))


@pytest.mark.slow
@pytest.mark.service
def test_server_lost_mid_sweep_then_resume_completes_it(tmp_path):
    backend = f"sqlite:///{tmp_path / 'server.db'}"
    # Jobs: seeds 0 to 3. Job 1 holds its open run until the test, having stopped the server, releases
    # it: from then on every job fails, whatever the scheduling.
    sweep_args = ("-m", "seed=0,1,2,3", *fault_overrides(pause=[1]), "tracking=server")
    with contextlib.ExitStack() as server:
        url = server.enter_context(mlflow_server(backend, tmp_path / "server"))
        sweep = start_cli(*sweep_args, f"tracking.uri={url}", f"hydra.sweep.dir={tmp_path / 'first'}",
                          cwd=tmp_path, env={"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0"})
        try:
            deadline = time.monotonic() + 240
            while _finished(url) < 1 and sweep.poll() is None and time.monotonic() < deadline:
                time.sleep(0.2)
            assert sweep.poll() is None and _finished(url) == 1, "job 0 did not finish while job 1 waits"
            server.close()  # the server goes away while job 1's run is open
            (tmp_path / RELEASE_FILE).touch()
        finally:
            stdout, stderr = finish(sweep, tmp_path, timeout=240)
    assert sweep.returncode == 1, stderr
    for job in (1, 2, 3):  # each failed job's reason, one line each, on stderr
        assert f"error: job {job} " in stderr and "127.0.0.1" in stderr
    assert "[1/4] seed=0  FINISHED" in stdout
    assert "Traceback" not in stderr and "could not record the sweep's summary" in stderr

    with mlflow_server(backend, tmp_path / "server-again") as url:  # the same backend, a new server
        assert _finished(url) == 1
        proc = run_sweep(*sweep_args[1:], f"tracking.uri={url}", "resume=true", cwd=tmp_path,
                         sweep_dir=tmp_path / "resumed")
        assert proc.returncode == 0, proc.stderr
        resumed = outcomes(MlflowClient(url), parent_id(proc.stdout))
        assert [o["status"] for o in resumed.values()] == ["SKIPPED", "FINISHED", "FINISHED", "FINISHED"]
        finished = [r for r in _children(url) if r["info"]["status"] == "FINISHED"]
        seeds_done = sorted(p["value"] for r in finished for p in r["data"]["params"] if p["key"] == "seed")
        assert seeds_done == ["0", "1", "2", "3"]
