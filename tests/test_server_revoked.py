"""A permission revoked while a user's runs are open, on a real basic-auth server (auth_server.py).

The admin revokes the user's permission on the experiment (or changes the user's password) while a
job is paused with its run open (faults.py). With EDIT gone the user can no longer end that run, nor
the sweep's parent: the job says so in one line naming the user, the sweep launches no further job and
exits 2, and its last line names the runs left RUNNING with the command a user who still has EDIT
runs to end them. The test runs that command as the admin and finds no run RUNNING.
"""

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from auth_server import (
    ADMIN,
    admin_call,
    as_user,
    basic_auth_server,
    client_command,
    client_env,
    credentials,
    grant,
    secret_in,
)
from conftest import CLI_TIMEOUT
from faults import RELEASE_FILE, fault_overrides
from mlflow.server.auth.client import AuthServiceClient
from mlflow.tracking import MlflowClient
from services import stop_group

pytestmark = [pytest.mark.slow, pytest.mark.service]  # a PostgreSQL and an MLflow server of its own

CAROL = ("carol", "carol-Pw-3e7b15d2")  # EDIT on the experiments below, until the admin revokes it
DAVE = ("dave", "dave-Pw-a90c6e21")  # EDIT on his, until the admin changes his password
SMALL = ("model=stacked", "input=random")
PAUSE_WAIT_S = 600  # for the paused job's run to be open; TensorFlow's import on a busy machine included
POLL_S = 0.5


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with basic_auth_server(tmp_path_factory.mktemp("auth_server")) as (url, _, _):
        for user, password in (CAROL, DAVE):
            admin_call(url, "2.0/mlflow/users/create", username=user, password=password)
        yield url


def _experiment_for(url: str, user: str, name: str) -> str:
    experiment_id = admin_call(url, "2.0/mlflow/experiments/create", name=name)["experiment_id"]
    grant(url, user, experiment_id, "EDIT")
    return experiment_id


def _revoke(url: str, user: str, experiment_id: str) -> None:
    """The admin takes every permission of `user` on the experiment away (MLflow's auth client)."""
    with credentials(ADMIN):
        AuthServiceClient(url).revoke_user_permission(user, "experiment", experiment_id)


def _change_password(url: str, user: str, experiment_id: str) -> None:
    """The admin gives `user` a new password (an expired one, as the client sees it)."""
    with credentials(ADMIN):
        AuthServiceClient(url).update_user_password(user, "new-Pw-5b2e8c47")


def _runs(url: str, experiment_id: str) -> dict[str, object]:
    """The experiment's runs by the seed in their overrides ("parent" for a sweep's), read as the admin."""
    with credentials(ADMIN):
        runs = MlflowClient(url).search_runs([experiment_id], max_results=50)
    found = {}
    for run in runs:
        seed = re.search(r"\bseed=(\d+)", run.data.tags.get("lstm_exp.overrides", ""))
        is_parent = run.data.tags.get("lstm_exp.sweep") == "parent"
        found["parent" if is_parent else int(seed.group(1))] = run
    return found


def _when(url: str, experiment_id: str, process: subprocess.Popen, ready, then) -> None:
    """Waits (bounded) until `ready(runs)` holds, then calls `then()` (the admin's change)."""
    deadline = time.monotonic() + PAUSE_WAIT_S
    while not ready(_runs(url, experiment_id)):
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "the paused job's run never opened"
        time.sleep(POLL_S)
    then()


def _run_paused(launch: Path, user: tuple[str, str], args: tuple[str, ...],
                revoke) -> subprocess.CompletedProcess:
    """The client command `args` as `user`, whose access `revoke(process)` takes away while a job is
    paused; then the job is released. The command is stopped if the test fails before its end."""
    launch.mkdir()
    process = subprocess.Popen(client_command(*args), cwd=launch, env=client_env(launch, as_user(user)),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               start_new_session=True)
    try:
        revoke(process)
        (launch / RELEASE_FILE).touch()
        stdout, stderr = process.communicate(timeout=CLI_TIMEOUT)
    finally:
        stop_group(process)
    return subprocess.CompletedProcess(args, process.returncode, stdout, stderr)


def _end_as_admin(line: str) -> None:
    """Runs the command the line gives for ending the runs left RUNNING, as the admin."""
    command = re.search(r"`(python -c .+?)`", line)
    assert command, line
    path = os.pathsep.join([str(Path(sys.executable).parent), os.environ["PATH"]])
    subprocess.run(["bash", "-c", command.group(1)], env={**os.environ, **as_user(ADMIN), "PATH": path},
                   check=True, timeout=120, capture_output=True)


def _line_with(text: str, *words: str) -> str:
    lines = [line for line in text.splitlines() if all(word in line for word in words)]
    assert len(lines) == 1, text
    return lines[0]


def test_a_sweep_whose_user_loses_edit_stops_and_names_the_runs_it_leaves_running(server, tmp_path):
    experiment_id = _experiment_for(server, CAROL[0], "revoked_sweep")
    launch = tmp_path / "launch"

    def job_1_paused(runs) -> bool:  # job 0 recorded, job 1 paused with its run open
        return (runs.get(0) is not None and runs[0].info.status == "FINISHED"
                and runs.get(1) is not None and runs[1].info.status == "RUNNING")

    # Two jobs at a time, four in all: job 1 is refused in the first batch, the second is not launched.
    proc = _run_paused(launch, CAROL, (
        "-m", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", "hydra.sweeper.max_batch_size=2", *SMALL,
        "seed=0,1,2,3", "tracking=server", f"tracking.uri={server}", "tracking.experiment=revoked_sweep",
        *fault_overrides(pause=[1]), f"hydra.sweep.dir={launch / 'sweep'}"),
        lambda process: _when(server, experiment_id, process, job_1_paused,
                              lambda: _revoke(server, CAROL[0], experiment_id)))

    assert proc.returncode == 2, proc.stderr
    runs = _runs(server, experiment_id)
    assert set(runs) == {"parent", 0, 1}  # jobs 2 and 3 were not launched
    assert runs[0].info.status == "FINISHED"
    assert runs[1].info.status == runs["parent"].info.status == "RUNNING"  # nobody left to end them
    job, parent = runs[1].info.run_id, runs["parent"].info.run_id
    # The job's line, and the sweep's last: the user, what to do, the runs left RUNNING.
    job_line = _line_with(proc.stderr, "error: job 1", "'carol'", "EDIT was revoked", job)
    last = _line_with(proc.stderr, "error:", "'carol'", parent, job)
    for line in (job_line, last):
        assert "grant EDIT again" in line and "resume=true" in line and "revoked_sweep" in line, line
    assert "2 not launched" in proc.stdout
    assert not secret_in(proc.stdout + proc.stderr, CAROL)

    _end_as_admin(last)
    assert {run.info.status for run in _runs(server, experiment_id).values()} == {"FINISHED", "FAILED"}


@pytest.mark.parametrize(("user", "take_away", "words"), [
    (CAROL, _revoke, ("403", "EDIT was revoked", "grant EDIT again", "tracking.experiment='revoked_run'")),
    (DAVE, _change_password, ("401", "MLFLOW_TRACKING_PASSWORD", "tracking.uri=")),
], ids=["edit-revoked", "password-changed"])
def test_a_single_run_whose_user_loses_access_says_so_in_one_line(server, tmp_path, user, take_away, words):
    name = f"revoked_run_{user[0]}"
    experiment_id = _experiment_for(server, user[0], name)

    def paused(runs) -> bool:
        return runs.get(7) is not None and runs[7].info.status == "RUNNING"

    proc = _run_paused(tmp_path / "launch", user, (
        *SMALL, "seed=7", "tracking=server", f"tracking.uri={server}", f"tracking.experiment={name}",
        *fault_overrides(pause=[7])),
        lambda process: _when(server, experiment_id, process, paused,
                              lambda: take_away(server, user[0], experiment_id)))

    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode == 2 and len(lines) == 1, proc.stderr
    run = _runs(server, experiment_id)[7]
    assert run.info.status == "RUNNING"
    for word in (f"{user[0]!r}", "resume=true", run.info.run_id, *words):
        assert word.replace("revoked_run", name) in lines[0], lines[0]
    assert not secret_in(proc.stdout + proc.stderr, user)

    _end_as_admin(lines[0])
    assert _runs(server, experiment_id)[7].info.status == "FAILED"
