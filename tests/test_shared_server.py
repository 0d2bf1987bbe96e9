"""`tracking=server` on a shared server a team can trust: `mlflow server --app-name basic-auth` on
PostgreSQL, artifacts served by the server, users with per-experiment permissions, as the README's
"Sharing runs" starts it. Every command works through the server alone, no password is ever recorded
or printed, and each refusal is one line naming the user, exit 2, with nothing written.
"""

import subprocess
import sys

import pytest
from auth_server import (
    ADMIN,
    NO_OVERRIDE,
    admin_call,
    as_user,
    basic_auth_server,
    credentials,
    files,
    grant,
    run_client,
    secret_in,
)
from conftest import error_lines
from mlflow.tracking import MlflowClient
from sweeps import parent_id

pytestmark = [pytest.mark.slow, pytest.mark.service]  # a PostgreSQL and an MLflow server of its own

ALICE = ("alice", "alice-Pw-52d8e0b4")  # EDIT on the team's experiment
BOB = ("bob", "bob-Pw-9c41a7f6")  # READ on it, nothing on the hidden one
TEAM, HIDDEN = "team", "hidden"
SMALL = ("model=stacked", "input=random")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """(url, backend URI, server folder): the README's commands, users and grants made by the admin."""
    with basic_auth_server(tmp_path_factory.mktemp("auth_server")) as (url, backend, folder):
        ids = {name: admin_call(url, "2.0/mlflow/experiments/create", name=name)["experiment_id"]
               for name in (TEAM, HIDDEN)}
        for (user, password), permission in ((ALICE, "EDIT"), (BOB, "READ")):
            admin_call(url, "2.0/mlflow/users/create", username=user, password=password)
            grant(url, user, ids[TEAM], permission)
        yield url, backend, folder


def test_a_team_member_records_and_reads_back_through_the_server(server, tmp_path):
    url, backend, server_folder = server
    alice = as_user(ALICE)
    track = ("tracking=server", f"tracking.uri={url}", f"tracking.experiment={TEAM}")
    launch = tmp_path / "launch"
    launch.mkdir()
    consoles = []

    # The client is held out of the server's artifacts folder (auth_server.py); first, that it is.
    peek = subprocess.run([*NO_OVERRIDE, sys.executable, "-c", "import os, sys; os.listdir(sys.argv[1])",
                           str(server_folder / "artifacts")], capture_output=True, text=True, timeout=120)
    assert peek.returncode != 0 and "PermissionError" in peek.stderr, peek.stderr

    single = run_client(*SMALL, "seed=5", *track, cwd=launch, env=alice)
    consoles.append(single)
    assert single.returncode == 0, single.stderr
    # The sweep re-runs seed 5 with resume=true: it finds the single run and skips it.
    sweep = run_client("-m", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", *SMALL, "seed=5,6",
                       "resume=true", *track, f"hydra.sweep.dir={launch / 'sweep'}", cwd=launch, env=alice)
    consoles.append(sweep)
    assert sweep.returncode == 0, sweep.stderr
    assert "SKIPPED" in sweep.stdout
    assert not (launch / "mlflow.db").exists() and not (launch / "mlartifacts").exists()

    client = MlflowClient(url)  # the test reads as the admin, through the server's REST API
    with credentials(ADMIN):
        experiment = client.get_experiment_by_name(TEAM)
        runs = client.search_runs([experiment.experiment_id], max_results=50)
    parent = parent_id(sweep.stdout)
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent]
    assert len(runs) == 3 and len(children) == 1  # the single run, the parent and the new job
    assert {r.info.status for r in runs} == {"FINISHED"}
    assert all(r.info.artifact_uri.startswith("mlflow-artifacts:") for r in runs)  # served, not a path
    child = children[0].info.run_id

    reads = [run_client("--tracking-uri", url, child, module="lstm_exp.rerun", cwd=launch, env=alice),
             run_client("--tracking-uri", url, "--experiment", TEAM, module="lstm_exp.compare", cwd=launch,
                        env=alice),
             run_client("export", child, "--layout", "torch", "--out", str(launch / "w.npz"),
                        "--tracking-uri", url, module="lstm_exp.weights", cwd=launch, env=alice),
             run_client(parent, "--tracking-uri", url, "--experiment", TEAM, "--out", str(launch / "r.html"),
                        module="lstm_exp.report", cwd=launch, env=alice)]
    consoles += reads
    for proc in reads:
        assert proc.returncode == 0, proc.stderr
    assert "identical" in reads[0].stdout
    assert (launch / "w.npz").is_file() and (launch / "r.html").is_file()

    # No password anywhere: consoles, every file of the launch directory (.hydra/ included, and the
    # clients' HOME and TMPDIR), every artifact, param and tag of every run, the server's tables,
    # artifact folder and log.
    for proc in consoles:
        assert not secret_in(proc.stdout + proc.stderr, ALICE)
    downloads = tmp_path / "downloads"
    with credentials(ADMIN):
        for run in runs:
            client.download_artifacts(run.info.run_id, "", str(downloads / run.info.run_id))
            assert not secret_in(repr(run.data.params) + repr(run.data.tags), ALICE)
    assert files(downloads) and files(server_folder / "artifacts")
    leaks = [p for p in files(launch) + files(downloads) + files(server_folder)
             if secret_in(p.read_bytes(), ALICE)]
    assert leaks == []
    dump = subprocess.run(["runuser", "-u", "postgres", "--", "pg_dump", backend], capture_output=True,
                          timeout=120, check=True).stdout
    assert b"lstm_exp.config_hash" in dump and not secret_in(dump, ALICE)


def _refused(proc: subprocess.CompletedProcess, *words: str) -> str:
    lines = error_lines(proc)
    assert proc.returncode == 2 and len(lines) == 1, proc.stderr
    for word in words:
        assert word in lines[0], lines[0]
    for user in (ALICE, BOB):
        assert not secret_in(proc.stdout + proc.stderr, user)
    return lines[0]


def test_refusals_are_one_line_naming_the_user_and_write_nothing(server, tmp_path):
    url, backend, _ = server
    track = ("tracking=server", f"tracking.uri={url}", f"tracking.experiment={TEAM}")
    with credentials(ADMIN):
        team = MlflowClient(url).get_experiment_by_name(TEAM).experiment_id
        before = len(MlflowClient(url).search_runs([team], max_results=50))

    # Logging without credentials, and as a user who may only read the experiment.
    _refused(run_client(*SMALL, *track, cwd=tmp_path), "401", "MLFLOW_TRACKING_USERNAME")
    _refused(run_client(*SMALL, *track, cwd=tmp_path, env=as_user(BOB)), "'bob'", "403", "grant EDIT")
    # Reading with a wrong password, and an experiment the user cannot see.
    compare = ("--tracking-uri", url)
    _refused(run_client(*compare, module="lstm_exp.compare", cwd=tmp_path, env=as_user((BOB[0], ALICE[1]))),
             "'bob'", "401")
    _refused(run_client(*compare, "--experiment", HIDDEN, module="lstm_exp.compare", cwd=tmp_path,
                        env=as_user(BOB)), "'bob'", "403", "READ", f"--experiment='{HIDDEN}'")
    # Recording to an experiment the user has no permission on at all (it cannot even see it).
    _refused(run_client(*SMALL, "tracking=server", f"tracking.uri={url}", f"tracking.experiment={HIDDEN}",
                        cwd=tmp_path, env=as_user(BOB)), "'bob'", "403", "grant EDIT",
             f"tracking.experiment='{HIDDEN}'")
    # A TLS URL to this plain-HTTP server; an address that is up but is no HTTP server (PostgreSQL's).
    _refused(run_client("--tracking-uri", url.replace("http://", "https://"), module="lstm_exp.compare",
                        cwd=tmp_path, env=as_user(BOB)), "TLS failed", "wants http://")
    database = "http://" + backend.split("@")[1].split("/")[0]
    _refused(run_client("--tracking-uri", database, module="lstm_exp.compare", cwd=tmp_path,
                        env=as_user(BOB)), "is it an MLflow server?")
    # A password in the URI is refused before anything is written, and is not echoed.
    with_password = url.replace("://", f"://{BOB[0]}:{BOB[1]}@")
    clean = tmp_path / "uri"
    clean.mkdir()
    _refused(run_client(*SMALL, "tracking=server", f"tracking.uri={with_password}", cwd=clean),
             "MLFLOW_TRACKING_PASSWORD", "bob:***@")
    _refused(run_client("export", "0" * 32, "--layout", "torch", "--tracking-uri", with_password,
                        module="lstm_exp.weights", cwd=clean), "MLFLOW_TRACKING_PASSWORD")
    assert files(clean) == []  # no outputs/, no .hydra/, no local store
    with credentials(ADMIN):
        assert len(MlflowClient(url).search_runs([team], max_results=50)) == before
