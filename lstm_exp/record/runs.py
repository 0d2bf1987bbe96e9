"""Reading recorded runs back: the store, a run by id or prefix, its artifacts, a filtered search."""

import contextlib
import re
from pathlib import Path

from lstm_exp.errors import ConfigError
from lstm_exp.record.http_bounds import http_bounds
from lstm_exp.record.read_only import check_readable, locked_store_error
from lstm_exp.record.server_access import server_refusals
from lstm_exp.record.store import default_store_uri
from lstm_exp.record.store_locks import StoreLocked, quiet_lock_retries, retry_locked

OPEN_TIMEOUT_S = 15  # bound on reaching a server or a database
MAX_RUNS = 1000  # rows listed; a store with more wants a --filter
SHOWN_MATCHES = 5  # run ids an ambiguous prefix's error lists
_LITERAL = re.compile(r"""('[^']*'|"[^"]*"|`[^`]*`)""")  # quoted strings and quoted names
_DOTTED = re.compile(r"\b(params?|metrics?|tags?)\.([A-Za-z_][\w.]*\w)")


@contextlib.contextmanager
def open_store(uri: str | None):
    """(MlflowClient, uri) on an existing store, default the launch directory's; for reading runs
    inside the block, where the client's requests to a server are bounded (`http_bounds`).

    Nothing is written to the store: MlflowClient would create or migrate MLflow's tables in any
    database it is given, so the database is checked read-only first (`read_only.check_readable`).

    Raises:
        ConfigError: a missing SQLite file, a database that is not an MLflow store of the installed
            MLflow's schema, or a server that does not answer.

    Example:
        >>> with open_store(None) as (client, uri):
        ...     run = find_run(client, "3f2a")
    """
    from mlflow.tracking import MlflowClient

    uri = default_store_uri(uri)
    check_readable(uri, timeout_s=OPEN_TIMEOUT_S)
    # MLflow opens its store in the constructor: a writer that took the lock after the check is waited
    # for here, quietly, and does not end the command with MLflow's "database is locked" traceback.
    quiet_lock_retries()
    with http_bounds(OPEN_TIMEOUT_S):
        try:
            client = retry_locked(lambda: MlflowClient(tracking_uri=uri), within_s=OPEN_TIMEOUT_S)
        except StoreLocked:
            raise locked_store_error(uri, OPEN_TIMEOUT_S) from None
        # A server's 401 or 403 to any read in the block: one line naming the user.
        with server_refusals(("--tracking-uri", uri), ("--tracking-uri", uri), "READ"):
            yield client, uri


def quote_dotted_names(text: str) -> str:
    """Backticks dotted keys of a search filter, leaving quoted strings alone.

    Example:
        >>> quote_dotted_names("params.model.cell = 'gru' and metrics.`layer_0.h_norm` > 0.1")
        "params.`model.cell` = 'gru' and metrics.`layer_0.h_norm` > 0.1"
    """
    parts = _LITERAL.split(text)  # odd indices are the quoted parts
    for i in range(0, len(parts), 2):
        parts[i] = _DOTTED.sub(lambda m: f"{m[1]}.`{m[2]}`" if "." in m[2] else m[0], parts[i])
    return "".join(parts)


def find_run(client, ref: str, key: str = "RUN"):
    """The run whose id is `ref`, or the one run whose id starts with `ref`."""
    from mlflow.exceptions import MlflowException

    try:
        return client.get_run(ref)
    except MlflowException:
        pass
    matches = []
    if re.fullmatch(r"[0-9a-f]{1,31}", ref):
        experiments = [e.experiment_id for e in client.search_experiments()]
        matches = client.search_runs(experiments, f"attributes.run_id LIKE '{ref}%'",
                                     max_results=SHOWN_MATCHES + 1)
    if len(matches) != 1:
        ids = [run.info.run_id for run in matches[:SHOWN_MATCHES]]
        found = (f"it starts {', '.join(ids)}{' and more' if len(matches) > SHOWN_MATCHES else ''}"
                 if matches else "no run has it")
        raise ConfigError(key, ref, f"the id of a run, or a unique prefix of one ({found})")
    return matches[0]


def download(client, run_id: str, name: str, folder: str, key: str = "RUN") -> Path:
    """One artifact of a run, as a local file; a run without it is a ConfigError."""
    try:
        return Path(client.download_artifacts(run_id, name, folder))
    except Exception as error:  # noqa: BLE001 - MLflow raises several kinds for a missing artifact
        reason = " ".join(str(error).split())[:200]
        raise ConfigError(key, run_id, f"a run that logged {name} ({reason})") from None


def download_files(client, run_id: str, names: tuple[str, ...], folder: str, key: str = "RUN") -> list[Path]:
    """Several artifacts of one run, as local files; a run without one of them is a ConfigError."""
    return [download(client, run_id, name, folder, key) for name in names]


def search(client, experiment: str, filter_text: str) -> list:
    """Runs of `experiment` matching the filter, newest first; sweep parents left out."""
    from mlflow.exceptions import MlflowException

    # A user without READ on it: the one line names the experiment (and the user).
    with server_refusals(("--tracking-uri", client.tracking_uri), ("--experiment", experiment), "READ"):
        found = client.get_experiment_by_name(experiment)
    if found is None:
        names = ", ".join(e.name for e in client.search_experiments()) or "none"
        raise ConfigError("--experiment", experiment, f"an experiment of the store ({names})")
    try:
        runs = client.search_runs([found.experiment_id], quote_dotted_names(filter_text),
                                  max_results=MAX_RUNS, order_by=["attributes.start_time DESC"])
    except MlflowException as error:
        reason = " ".join(str(error.message).split())[:300]
        allowed = f"a filter in MLflow's search grammar, e.g. params.model.cell = 'gru' (MLflow: {reason})"
        raise ConfigError("--filter", filter_text, allowed) from None
    return [r for r in runs if r.data.tags.get("lstm_exp.sweep") != "parent"]
