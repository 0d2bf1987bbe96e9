"""A team's tracking server for tests: `mlflow server --app-name basic-auth` on PostgreSQL with artifacts
served by the server, as the README's "Sharing runs" starts it, and clients that cannot see its disk.

The server keeps its artifacts in a directory owned by `nobody`, mode 0700. The server runs as root
and writes there; each client command runs as root too (the interpreter lives under root's 0700 home,
so no other user could start it) but without the capabilities that let root ignore permission bits
(`setpriv --bounding-set -dac_override,-dac_read_search,-fowner,-chown`): for the client that directory
is as closed as another user's. A client that read or wrote it through the filesystem would fail.
"""

import base64
import contextlib
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from conftest import CLI_TIMEOUT
from faults import on_python_path
from services import mlflow_server, postgres_cluster
from sweeps import HTTP_TIMEOUT_S

ADMIN = ("admin", "admin-Pw-7f3c9a1e")
# What lets root ignore permission bits: a client without them is held to the directory's 0700.
NO_OVERRIDE = ("setpriv", "--bounding-set", "-dac_override,-dac_read_search,-fowner,-chown", "--")


def as_user(user: tuple[str, str]) -> dict[str, str]:
    """The client settings of `user`: the environment, nothing in any URI."""
    return {"MLFLOW_TRACKING_USERNAME": user[0], "MLFLOW_TRACKING_PASSWORD": user[1]}


def admin_call(url: str, endpoint: str, **body) -> dict:
    """One call to the basic-auth app's REST API (or MLflow's), as the admin."""
    reply = requests.post(f"{url}/api/{endpoint}", json=body, auth=ADMIN, timeout=HTTP_TIMEOUT_S)
    reply.raise_for_status()
    return reply.json()


def grant(url: str, user: str, experiment_id: str, permission: str) -> None:
    admin_call(url, "3.0/mlflow/users/permissions/grant", username=user, resource_type="experiment",
               resource_id=experiment_id, permission=permission)


@contextlib.contextmanager
def basic_auth_server(folder: Path) -> Iterator[tuple[str, str, Path]]:
    """(url, backend URI, server folder): a basic-auth server whose artifacts only it can reach."""
    config = folder / "basic_auth.ini"
    config.write_text(f"""[mlflow]
default_permission = NO_PERMISSIONS
database_uri = sqlite:///{folder / 'basic_auth.db'}
admin_username = {ADMIN[0]}
admin_password = {ADMIN[1]}
authorization_function = mlflow.server.auth:authenticate_request_basic_auth
""")
    env = {"MLFLOW_AUTH_CONFIG_PATH": str(config), "MLFLOW_FLASK_SERVER_SECRET_KEY": "test-only-key"}
    artifacts = folder / "server" / "artifacts"  # what `mlflow_server` gives --artifacts-destination
    artifacts.mkdir(parents=True)
    shutil.chown(artifacts, "nobody")
    artifacts.chmod(0o700)
    with postgres_cluster() as backend, \
            mlflow_server(backend, folder / "server", "--app-name", "basic-auth", env=env) as url:
        yield url, backend, folder / "server"


@contextlib.contextmanager
def credentials(user: tuple[str, str]):
    """`user`'s credentials in this process's environment, for MLflow's client, inside the block."""
    with pytest.MonkeyPatch.context() as patch:
        for name, value in as_user(user).items():
            patch.setenv(name, value)
        yield


def client_command(*args: str, module: str = "lstm_exp.run") -> list[str]:
    """`python -m module args` as a client that cannot read or write the server's artifacts folder."""
    return [*NO_OVERRIDE, sys.executable, "-m", module, *args]


def client_env(cwd: Path, env: dict[str, str] | None) -> dict[str, str]:
    """The client's environment: HOME and TMPDIR under `cwd`, so that all it writes can be searched."""
    for folder in ("home", "tmp"):
        (cwd / folder).mkdir(exist_ok=True)
    full = on_python_path({**os.environ, "PYTHONUNBUFFERED": "1", "HOME": str(cwd / "home"),
                           "TMPDIR": str(cwd / "tmp"), **(env or {})})
    full.pop("MLFLOW_TRACKING_URI", None)
    for name in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"):
        if name not in (env or {}):
            full.pop(name, None)
    return full


def run_client(*args: str, cwd: Path, module: str = "lstm_exp.run", env: dict[str, str] | None = None,
               timeout: float = CLI_TIMEOUT) -> subprocess.CompletedProcess:
    """`run_cli`'s twin for the server's clients: run from `cwd`, held out of the artifacts folder."""
    return subprocess.run(client_command(*args, module=module), cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, env=client_env(cwd, env))


def secret_in(text: str | bytes, user: tuple[str, str]) -> bool:
    """Whether `user`'s password is in `text`, plain or as the basic-auth header that carries it."""
    data = text.encode() if isinstance(text, str) else text
    header = base64.b64encode(f"{user[0]}:{user[1]}".encode())
    return user[1].encode() in data or header in data


def files(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.is_file()]
