"""MLflow's store: opening it, the experiment, and the calls that create, log and end runs.

Only `lstm_exp.record` imports mlflow; `RunRecord` (run_record.py) decides when these calls happen.
"""

import http.client
import logging
import platform
import ssl
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from lstm_exp.config.specs import Experiment
from lstm_exp.config.store_checks import sqlite_path
from lstm_exp.errors import ConfigError
from lstm_exp.record import file_datasets, identity
from lstm_exp.record.server_access import refusal
from lstm_exp.record.store_creation import create_whole
from lstm_exp.record.store_locks import (
    LOCK_WAIT_S,
    StoreLocked,
    locked_store_error,
    quiet_lock_retries,
    retry_locked,
    sqlite_file_lock,
)

log = logging.getLogger(__name__)
PARAM_LIMIT = 500  # longer values (literal inputs) are cut; config.yaml keeps them whole
TAG_PREFIX = "lstm_exp."


EXPERIMENT_KIND = "custom_model_development"  # the UI's model-training view, not its GenAI one


def default_store_uri(uri: str | None, launch_dir: Path | None = None) -> str:
    """`uri` with a relative SQLite path made absolute, else `sqlite:///<launch directory>/mlflow.db`.

    Args:
        launch_dir: where the command was started (`hydra.runtime.cwd`); default the current directory.
            A job that Hydra runs in its own folder (`hydra.job.chdir=true`) still records there.

    Example:
        >>> default_store_uri("sqlite:///runs/mlflow.db")  # launched from /home/me
        'sqlite:////home/me/runs/mlflow.db'
    """
    launch_dir = launch_dir or Path.cwd()
    if not uri:
        return f"sqlite:///{launch_dir / 'mlflow.db'}"
    if uri.startswith("sqlite:///"):
        return f"sqlite:///{sqlite_path(uri, launch_dir)}"
    return uri


def _artifact_location(uri: str) -> str | None:
    # Beside a SQLite file, so that `mlflow ui` in that directory finds every artifact.
    if uri.startswith("sqlite:///"):
        return (Path(uri[len("sqlite:///") :]).parent / "mlartifacts").as_uri()
    return None  # a server decides (it serves artifacts)


def check_reachable(uri: str, timeout_s: float) -> None:
    """Fails fast (ConfigError) when an HTTP tracking server does not answer its health check."""
    if not uri.startswith(("http://", "https://")):
        return
    why = f"no answer within {timeout_s:g} s"
    try:
        with urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=timeout_s) as reply:
            if reply.status == 200:
                return
            why = f"its /health answered HTTP {reply.status}: is it an MLflow server?"
    except urllib.error.HTTPError as error:
        why = f"its /health answered HTTP {error.code}: is it an MLflow server?"
    except urllib.error.URLError as error:
        if isinstance(error.reason, ssl.SSLError):
            why = f"TLS failed ({error.reason.reason or error.reason}): a plain-HTTP server wants http://"
    except http.client.HTTPException:  # something that does not speak HTTP (a database's port)
        why = "its answer was not HTTP: is it an MLflow server?"
    except (OSError, ValueError):
        pass
    raise ConfigError("tracking.uri", uri, f"a reachable MLflow tracking server ({why})")


def open_experiment(uri: str, experiment: str, timeout_s: float):
    """Connects to the store at `uri` and returns (client, experiment_id), creating the experiment once.

    Raises:
        ConfigError: the store cannot be opened, or the experiment exists but is deleted.
    """
    check_reachable(uri, timeout_s)
    if uri.startswith("sqlite:///") and Path(uri[len("sqlite:///") :]).is_dir():
        # MLflow would retry opening a folder as a database for ~100 s, logging a warning each time.
        raise ConfigError("tracking.uri", uri, "a SQLite database file, or a path where one can be made "
                          "(that path is a folder)")
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    # "Creating initial MLflow database tables..." is MLflow's business, not the report's.
    logging.getLogger("mlflow.store.db.utils").setLevel(logging.WARNING)
    quiet_lock_retries()

    def get_or_create(client):
        found = client.get_experiment_by_name(experiment)
        if found is not None:
            if found.lifecycle_stage == "deleted":
                raise ConfigError("tracking.experiment", experiment, (
                    "an experiment that is not deleted; restore it with `mlflow experiments restore "
                    f"--experiment-id {found.experiment_id}` (MLFLOW_TRACKING_URI={uri}) "
                    "or pick another name"))
            return found.experiment_id
        try:
            return client.create_experiment(experiment, _artifact_location(uri),
                                            tags={"mlflow.experimentKind": EXPERIMENT_KIND})
        except MlflowException as error:  # another process created it first
            if "RESOURCE_ALREADY_EXISTS" not in str(error.error_code) + str(error):
                raise
            return client.get_experiment_by_name(experiment).experiment_id

    def connect():
        client = MlflowClient(tracking_uri=uri)  # constructing MLflow's store reads (may create) tables
        return client, get_or_create(client)

    try:
        deadline = time.monotonic() + timeout_s  # one wait in all, for the lock file and the database
        with sqlite_file_lock(uri, timeout_s):  # one process at a time creates a fresh database
            if uri.startswith("sqlite:///"):
                create_whole(Path(uri[len("sqlite:///") :]))
            return retry_locked(connect, within_s=max(deadline - time.monotonic(), 0.0))
    except ConfigError:
        raise
    except StoreLocked:
        raise locked_store_error(uri, "tracking.uri", timeout_s) from None
    except Exception as error:  # noqa: BLE001 - MLflow and SQLAlchemy raise many kinds for a bad store
        if found := refusal(error, ("tracking.uri", uri), ("tracking.experiment", experiment), "EDIT"):
            raise found from None
        # SQLAlchemy wraps the database's own words ("database or disk is full") in its SQL and a link.
        reason = " ".join(str(getattr(error, "orig", None) or error).split())[:300]
        raise ConfigError("tracking.uri", uri, f"an MLflow store that opens ({reason})") from None


def flatten(node, prefix: str = "") -> dict[str, str]:
    """The resolved config as dotted keys, the form MLflow params take."""
    flat = {}
    for key, value in node.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten(value, name + "."))
        else:
            text = str(value)
            flat[name] = text if len(text) <= PARAM_LIMIT else text[: PARAM_LIMIT - 3] + "..."
    return flat


def run_tags(experiment: Experiment, config_hash: str, overrides: list[str]) -> dict[str, str]:
    """Model and input names, overrides, the config hash and code version, the source.

    Args:
        config_hash: `identity.config_hash` of the composed config the experiment was parsed from.
    """
    commit = identity.git_commit()
    return {
        TAG_PREFIX + "model": experiment.model_name,
        TAG_PREFIX + "input": experiment.input.name,
        TAG_PREFIX + "overrides": " ".join(overrides),
        TAG_PREFIX + "config_hash": config_hash,
        TAG_PREFIX + "code_version": identity.code_version(),
        TAG_PREFIX + "seed": str(experiment.seed),
        # Not part of the config hash (it does not change the arrays), but `resume` must not reuse
        # a run without a model when one is asked for.
        TAG_PREFIX + "logged_model": str(experiment.tracking.log_model).lower(),
        "mlflow.source.name": "lstm_exp.run",
        "mlflow.source.type": "LOCAL",
        "mlflow.source.git.commit": commit.removesuffix("+dirty"),
        TAG_PREFIX + "git_dirty": str(commit.endswith("+dirty")).lower(),
    }


def version_tags() -> dict[str, str]:
    """Versions of the libraries this process has imported, read from the modules themselves.

    Distribution metadata is not used: the same module comes from `tensorflow` or `tensorflow-cpu`.
    """
    versions = [f"{name}={getattr(sys.modules[name], '__version__', '?')}"
                for name in ("tensorflow", "keras", "numpy", "hydra", "mlflow") if name in sys.modules]
    return {TAG_PREFIX + "versions": " ".join([*versions, f"python={platform.python_version()}"])}


def start_run(client, experiment_id: str, name: str, tags: dict[str, str],
              within_s: float = LOCK_WAIT_S) -> str:
    """Creates a RUNNING run and returns its id."""
    return retry_locked(lambda: client.create_run(experiment_id, tags=tags, run_name=name),
                        within_s).info.run_id


def finished_twin(client, experiment_id: str, tags: dict[str, str],
                  within_s: float = LOCK_WAIT_S) -> str | None:
    """A FINISHED run computed from the same config by the same code, if the store has one.

    When `tags` ask for a logged model, the twin must have one too.
    """
    keys = [TAG_PREFIX + "config_hash", TAG_PREFIX + "code_version"]
    if tags.get(TAG_PREFIX + "logged_model") == "true":
        keys.append(TAG_PREFIX + "logged_model")
    query = " and ".join(f"tags.`{k}` = '{tags[k]}'" for k in keys)
    found = retry_locked(lambda: client.search_runs(
        [experiment_id], query + " and attributes.status = 'FINISHED'", max_results=1), within_s)
    return found[0].info.run_id if found else None


def log_run_directory(client, run_id: str, folder: Path, metrics: list, params: dict[str, str],
                      tags: dict[str, str]) -> None:
    """Logs a run's metrics, params and tags in batches, its folder as artifacts, its input as a dataset."""
    import numpy as np
    from mlflow.entities import Metric, Param, RunTag

    now = int(time.time() * 1000)
    metric_list = [Metric(name, float(value), now, int(step)) for name, value, step in metrics]
    param_list = [Param(key, value) for key, value in params.items()]
    tag_list = [RunTag(key, value) for key, value in tags.items()]
    for start in range(0, max(len(metric_list), len(param_list), len(tag_list)), 100):  # MLflow's limits
        retry_locked(lambda s=start: client.log_batch(
            run_id, metrics=metric_list[s : s + 100], params=param_list[s : s + 100],
            tags=tag_list[s : s + 100]))
    retry_locked(lambda: client.log_artifacts(run_id, str(folder)))
    with np.load(folder / "states.npz") as archive:
        log_dataset(client, run_id, archive["input"])
    file_datasets.log_file_datasets(client, run_id, folder)


def running_children(client, parent_run_id: str) -> list[str]:
    """Ids of the parent's child runs that are still RUNNING."""
    experiment_id = retry_locked(lambda: client.get_run(parent_run_id)).info.experiment_id
    found = retry_locked(lambda: client.search_runs(
        [experiment_id], f"tags.mlflow.parentRunId = '{parent_run_id}' and attributes.status = 'RUNNING'",
        max_results=5000))
    return [run.info.run_id for run in found]


def log_dataset(client, run_id: str, inputs) -> None:
    """Registers the input as an MLflow dataset, so the UI lists it per run."""
    import mlflow.data
    from mlflow.entities import DatasetInput, InputTag

    dataset = mlflow.data.from_numpy(inputs, name="input")._to_mlflow_entity()
    tag = InputTag(key="mlflow.data.context", value="input")
    # Parallel jobs with the same input race to create one dataset row: the loser gets a unique-key
    # violation, and its retry finds the row and links it.
    retry_locked(lambda: client.log_inputs(run_id, datasets=[DatasetInput(dataset, [tag])]),
                 transient=("duplicate key", "UNIQUE constraint failed"))


def run_page(experiment_id: str, run_id: str | None = None) -> str:
    """The UI's page of a run (or of the experiment), in its model-training view, not the GenAI one."""
    page = f"#/experiments/{experiment_id}" + (f"/runs/{run_id}" if run_id else "")
    return page + "?workflowType=machine_learning"


def ui_command(uri: str, experiment_id: str, run_id: str | None = None) -> str:
    """The one command that opens the MLflow UI on this store, and where the run is shown in it."""
    page = run_page(experiment_id, run_id)
    if uri.startswith("sqlite:///"):
        mlflow = Path(sys.executable).with_name("mlflow")  # the .venv's, wherever this is launched
        command = f"{mlflow if mlflow.exists() else 'mlflow'} ui --backend-store-uri {uri}"
        return f"{command}   then open http://127.0.0.1:5000/{page}"
    return f"open {uri.rstrip('/')}/{page}"
