"""Checks of `tracking.*` that MLflow would otherwise refuse with a traceback, made before TensorFlow loads.

No MLflow import here: the limits are MLflow's own (its SQL schema), written down where they are checked.
"""

import importlib.util
from pathlib import Path
from urllib.parse import urlsplit

from lstm_exp.errors import ConfigError

# MLflow stores lstm_exp can record to (a file store is refused by MLflow 3 itself).
URI_SCHEMES = ("sqlite", "http", "https", "postgresql", "mysql", "mssql", "databricks")
# The database driver each SQL scheme needs, and the extra of ours that installs it.
DRIVERS = {"postgresql": ("psycopg", "postgres"), "mysql": ("pymysql", None), "mssql": ("pyodbc", None)}
MAX_EXPERIMENT_NAME = 256  # experiments.name is VARCHAR(256) in MLflow's SQL schema
MAX_RUN_NAME = 250  # runs.name is VARCHAR(250)
_ALLOWED_URI = "null (sqlite:///<launch dir>/mlflow.db) or a URI of scheme " + ", ".join(URI_SCHEMES)


# Where a password belongs instead of the URI, which is logged, tagged and printed in links.
CREDENTIALS = {
    "http": "MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD in the environment, or "
            "~/.mlflow/credentials",
    "postgresql": "PGPASSWORD in the environment, or ~/.pgpass",
    "mysql": "the database client's option file (~/.my.cnf)",
}


def _refuse(uri: str, why: str) -> ConfigError:
    return ConfigError("tracking.uri", uri, f"{_ALLOWED_URI} ({why})")


def without_password(uri: str) -> str:
    """`uri` with the password of its `user:password@` part replaced by `***` (for error messages)."""
    parts = urlsplit(uri)
    if parts.password is None:
        return uri
    host = parts.netloc.rpartition("@")[2]
    return parts._replace(netloc=f"{parts.username}:***@{host}").geturl()


def check_no_password(uri: str) -> None:
    """Refuses a URI with `user:password@` in it, saying where the password belongs; the message stars it.

    The command line is checked with this before Hydra writes it to the job's `.hydra/` folder.
    """
    try:
        parts = urlsplit(uri)
        password = parts.password
    except ValueError:
        return  # check_store_uri refuses a malformed URI
    if password is not None:
        scheme = parts.scheme.partition("+")[0]
        where = CREDENTIALS.get(scheme.removesuffix("s"), "the database client's own settings")
        raise ConfigError("tracking.uri", without_password(uri),
                          f"a URI without a password (it would be recorded and printed): put it in {where}")


def check_store_uri(uri: str) -> None:
    """Refuses a URI that MLflow could not open: unknown scheme, malformed address, missing driver."""
    if any(ch.isspace() or not ch.isprintable() for ch in uri):
        raise _refuse(uri, "no spaces or control characters")
    try:
        parts = urlsplit(uri)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number in range
    except ValueError as error:
        raise _refuse(uri.rpartition("@")[2], f"malformed: {error}") from None
    scheme, _, dialect_driver = parts.scheme.partition("+")
    if scheme not in URI_SCHEMES:
        raise _refuse(without_password(uri), "unknown scheme")
    check_no_password(uri)
    if scheme == "sqlite":
        if not uri.startswith("sqlite:///") or uri == "sqlite:///":
            raise _refuse(uri, "a file path after sqlite:///, relative to the launch directory or absolute")
        return
    if scheme in ("http", "https") and not parts.hostname:
        raise _refuse(uri, "a server address such as http://127.0.0.1:5000")
    if scheme in DRIVERS and not dialect_driver:
        module, extra = DRIVERS[scheme]
        if importlib.util.find_spec(module) is None:
            how = f"pip install 'lstm_exp[{extra}]'" if extra else f"pip install {module}"
            raise _refuse(uri, f"its database driver {module} is not installed: {how}")


def sqlite_path(uri: str, launch_dir: Path) -> Path:
    """The file of a `sqlite:///` URI; a relative one (as in MLflow's docs) is relative to `launch_dir`."""
    path = Path(uri[len("sqlite:///") :])
    return path if path.is_absolute() else launch_dir / path


def check_names(experiment: object, run_name: object) -> None:
    """Experiment and run names that the store can hold."""
    if not isinstance(experiment, str) or not experiment.strip():
        raise ConfigError("tracking.experiment", experiment, "a non-empty experiment name")
    if len(experiment) > MAX_EXPERIMENT_NAME or not experiment.isprintable():
        raise ConfigError("tracking.experiment", experiment,
                          f"a name of at most {MAX_EXPERIMENT_NAME} printable characters")
    if run_name is not None and (len(str(run_name)) > MAX_RUN_NAME or not str(run_name).isprintable()):
        raise ConfigError("tracking.run_name", run_name,
                          f"null or a name of at most {MAX_RUN_NAME} printable characters")
