"""`tracking=server` on a shared server a team can trust: `mlflow server --app-name basic-auth` on
PostgreSQL, artifacts served by the server, users with per-experiment permissions, as the README's
"Sharing runs" starts it. Every command works through the server alone, no password is ever recorded
or printed, and each refusal is one line naming the user, exit 2, with nothing written.
"""

import base64
import contextlib
import subprocess
from pathlib import Path

import pytest
import requests
from conftest import error_lines, run_cli
from mlflow.tracking import MlflowClient
from services import mlflow_server, postgres_cluster
from sweeps import HTTP_TIMEOUT_S, parent_id, run_sweep

pytestmark = [pytest.mark.slow, pytest.mark.service]  # a PostgreSQL and an MLflow server of its own

ADMIN = ("admin", "admin-Pw-7f3c9a1e")
ALICE = ("alice", "alice-Pw-52d8e0b4")  # EDIT on the team's experiment
BOB = ("bob", "bob-Pw-9c41a7f6")  # READ on it, nothing on the hidden one
TEAM, HIDDEN = "team", "hidden"
SMALL = ("model=stacked", "input=random")


def _as(user: tuple[str, str]) -> dict[str, str]:
    """The client settings of `user`: the environment, nothing in any URI."""
    return {"MLFLOW_TRACKING_USERNAME": user[0], "MLFLOW_TRACKING_PASSWORD": user[1]}


def _admin(url: str, endpoint: str, **body) -> dict:
    """One call to the basic-auth app's REST API (or MLflow's), as the admin."""
    reply = requests.post(f"{url}/api/{endpoint}", json=body, auth=ADMIN, timeout=HTTP_TIMEOUT_S)
    reply.raise_for_status()
    return reply.json()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """(url, backend URI, server folder): the README's commands, users and grants made by the admin."""
    folder = tmp_path_factory.mktemp("auth_server")
    config = folder / "basic_auth.ini"
    config.write_text(f"""[mlflow]
default_permission = NO_PERMISSIONS
database_uri = sqlite:///{folder / 'basic_auth.db'}
admin_username = {ADMIN[0]}
admin_password = {ADMIN[1]}
authorization_function = mlflow.server.auth:authenticate_request_basic_auth
""")
    env = {"MLFLOW_AUTH_CONFIG_PATH": str(config), "MLFLOW_FLASK_SERVER_SECRET_KEY": "test-only-key"}
    with postgres_cluster() as backend, \
            mlflow_server(backend, folder / "server", "--app-name", "basic-auth", env=env) as url:
        ids = {name: _admin(url, "2.0/mlflow/experiments/create", name=name)["experiment_id"]
               for name in (TEAM, HIDDEN)}
        for (user, password), permission in ((ALICE, "EDIT"), (BOB, "READ")):
            _admin(url, "2.0/mlflow/users/create", username=user, password=password)
            _admin(url, "3.0/mlflow/users/permissions/grant", username=user, resource_type="experiment",
                   resource_id=ids[TEAM], permission=permission)
        yield url, backend, folder / "server"


@contextlib.contextmanager
def _credentials(user: tuple[str, str]):
    """`user`'s credentials in this process's environment, for MLflow's client, inside the block."""
    with pytest.MonkeyPatch.context() as patch:
        for name, value in _as(user).items():
            patch.setenv(name, value)
        yield


def _secret_in(text: str | bytes, user: tuple[str, str]) -> bool:
    """Whether `user`'s password is in `text`, plain or as the basic-auth header that carries it."""
    data = text.encode() if isinstance(text, str) else text
    header = base64.b64encode(f"{user[0]}:{user[1]}".encode())
    return user[1].encode() in data or header in data


def _files(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.is_file()]


def test_a_team_member_records_and_reads_back_through_the_server(server, tmp_path):
    url, backend, server_folder = server
    alice = _as(ALICE)
    track = ("tracking=server", f"tracking.uri={url}", f"tracking.experiment={TEAM}")
    launch = tmp_path / "launch"
    launch.mkdir()
    consoles = []

    single = run_cli(*SMALL, "seed=5", *track, cwd=launch, env=alice)
    consoles.append(single)
    assert single.returncode == 0, single.stderr
    # The sweep re-runs seed 5 with resume=true: it finds the single run and skips it.
    sweep = run_sweep("hydra/launcher=joblib", "hydra.launcher.n_jobs=2", *SMALL, "seed=5,6", "resume=true",
                      *track, cwd=launch, sweep_dir=launch / "sweep", env=alice)
    consoles.append(sweep)
    assert sweep.returncode == 0, sweep.stderr
    assert "SKIPPED" in sweep.stdout
    assert not (launch / "mlflow.db").exists() and not (launch / "mlartifacts").exists()

    client = MlflowClient(url)  # the test reads as the admin, through the server's REST API
    with _credentials(ADMIN):
        experiment = client.get_experiment_by_name(TEAM)
        runs = client.search_runs([experiment.experiment_id], max_results=50)
    parent = parent_id(sweep.stdout)
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent]
    assert len(runs) == 3 and len(children) == 1  # the single run, the parent and the new job
    assert {r.info.status for r in runs} == {"FINISHED"}
    assert all(r.info.artifact_uri.startswith("mlflow-artifacts:") for r in runs)  # served, not a path
    child = children[0].info.run_id

    reads = [run_cli("--tracking-uri", url, child, module="lstm_exp.rerun", cwd=launch, env=alice),
             run_cli("--tracking-uri", url, "--experiment", TEAM, module="lstm_exp.compare", cwd=launch,
                     env=alice),
             run_cli("export", child, "--layout", "torch", "--out", str(launch / "w.npz"),
                     "--tracking-uri", url, module="lstm_exp.weights", cwd=launch, env=alice),
             run_cli(parent, "--tracking-uri", url, "--experiment", TEAM, "--out", str(launch / "r.html"),
                     module="lstm_exp.report", cwd=launch, env=alice)]
    consoles += reads
    for proc in reads:
        assert proc.returncode == 0, proc.stderr
    assert "identical" in reads[0].stdout
    assert (launch / "w.npz").is_file() and (launch / "r.html").is_file()

    # No password anywhere: consoles, every file of the launch directory (.hydra/ included), every
    # artifact, param and tag of every run, the server's tables, artifact folder and log.
    for proc in consoles:
        assert not _secret_in(proc.stdout + proc.stderr, ALICE)
    downloads = tmp_path / "downloads"
    with _credentials(ADMIN):
        for run in runs:
            client.download_artifacts(run.info.run_id, "", str(downloads / run.info.run_id))
            assert not _secret_in(repr(run.data.params) + repr(run.data.tags), ALICE)
    assert _files(downloads) and _files(server_folder / "artifacts")
    leaks = [p for p in _files(launch) + _files(downloads) + _files(server_folder)
             if _secret_in(p.read_bytes(), ALICE)]
    assert leaks == []
    dump = subprocess.run(["runuser", "-u", "postgres", "--", "pg_dump", backend], capture_output=True,
                          timeout=120, check=True).stdout
    assert b"lstm_exp.config_hash" in dump and not _secret_in(dump, ALICE)


def _refused(proc: subprocess.CompletedProcess, *words: str) -> str:
    lines = error_lines(proc)
    assert proc.returncode == 2 and len(lines) == 1, proc.stderr
    for word in words:
        assert word in lines[0], lines[0]
    for user in (ALICE, BOB):
        assert not _secret_in(proc.stdout + proc.stderr, user)
    return lines[0]


def test_refusals_are_one_line_naming_the_user_and_write_nothing(server, tmp_path):
    url, backend, _ = server
    track = ("tracking=server", f"tracking.uri={url}", f"tracking.experiment={TEAM}")
    with _credentials(ADMIN):
        team = MlflowClient(url).get_experiment_by_name(TEAM).experiment_id
        before = len(MlflowClient(url).search_runs([team], max_results=50))

    # Logging without credentials, and as a user who may only read the experiment.
    _refused(run_cli(*SMALL, *track, cwd=tmp_path), "401", "MLFLOW_TRACKING_USERNAME")
    _refused(run_cli(*SMALL, *track, cwd=tmp_path, env=_as(BOB)), "'bob'", "403", "grant EDIT")
    # Reading with a wrong password, and an experiment the user cannot see.
    _refused(run_cli("--tracking-uri", url, module="lstm_exp.compare", cwd=tmp_path,
                     env=_as((BOB[0], ALICE[1]))), "'bob'", "401")
    _refused(run_cli("--tracking-uri", url, "--experiment", HIDDEN, module="lstm_exp.compare", cwd=tmp_path,
                     env=_as(BOB)), "'bob'", "403", "READ")
    # A TLS URL to this plain-HTTP server; an address that is up but is no HTTP server (PostgreSQL's).
    _refused(run_cli("--tracking-uri", url.replace("http://", "https://"), module="lstm_exp.compare",
                     cwd=tmp_path, env=_as(BOB)), "TLS failed", "wants http://")
    database = "http://" + backend.split("@")[1].split("/")[0]
    _refused(run_cli("--tracking-uri", database, module="lstm_exp.compare", cwd=tmp_path, env=_as(BOB)),
             "is it an MLflow server?")
    # A password in the URI is refused before anything is written, and is not echoed.
    with_password = url.replace("://", f"://{BOB[0]}:{BOB[1]}@")
    clean = tmp_path / "uri"
    clean.mkdir()
    _refused(run_cli(*SMALL, "tracking=server", f"tracking.uri={with_password}", cwd=clean),
             "MLFLOW_TRACKING_PASSWORD", "bob:***@")
    _refused(run_cli("export", "0" * 32, "--layout", "torch", "--tracking-uri", with_password,
                     module="lstm_exp.weights", cwd=clean), "MLFLOW_TRACKING_PASSWORD")
    assert _files(clean) == []  # no outputs/, no .hydra/, no local store
    with _credentials(ADMIN):
        assert len(MlflowClient(url).search_runs([team], max_results=50)) == before
