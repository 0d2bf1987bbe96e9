"""A tracking server's refusals (`mlflow server --app-name basic-auth`) as one line naming the user.

The server answers 401 to a request without valid credentials and 403 to a user without the
permission the request needs on the experiment (READ to see it, EDIT to log to it). Credentials come
only from the environment (`MLFLOW_TRACKING_USERNAME` / `MLFLOW_TRACKING_PASSWORD`) or MLflow's
credentials file (`~/.mlflow/credentials`), read by MLflow itself at each request; the user is named
here, the password never.
"""

import contextlib

from lstm_exp.config.store_checks import CREDENTIALS
from lstm_exp.errors import ConfigError

REFUSED = ("UNAUTHENTICATED", "PERMISSION_DENIED")  # MLflow's error codes for 401 and 403


class ServerRefusal(ConfigError):
    """A server's 401 or 403: every later request as the same user, on that experiment, would be refused.

    Args:
        key, received, allowed: as `ConfigError`'s.
        code: MLflow's error code, `UNAUTHENTICATED` (401) or `PERMISSION_DENIED` (403).
    """

    def __init__(self, key: str, received: object, allowed: str, code: str) -> None:
        super().__init__(key, received, allowed)
        self.code = code


def server_user() -> str | None:
    """The user MLflow sends to a server: the environment's, else its credentials file's."""
    from mlflow.utils.credentials import read_mlflow_creds

    return read_mlflow_creds().username


def is_refusal(error: BaseException) -> bool:
    """Whether `error` is a server's 401 or 403 (an MlflowException whose code says so)."""
    return str(getattr(error, "error_code", "")) in REFUSED


def refusal(error: Exception, server: tuple[str, str], experiment: tuple[str, str],
            need: str) -> ServerRefusal | None:
    """The one-line refusal for a server's 401 or 403 (`error` an MlflowException), else None.

    Args:
        server: (key, value) a 401 is reported under: the option or config key of the URI, and the URI.
        experiment: (key, value) a 403 is reported under: the experiment, or the run, asked for.
        need: the permission the command needs on the experiment: "EDIT" to record, "READ" to read.

    Example:
        >>> refusal(error_403, ("tracking.uri", url), ("tracking.experiment", "lstm_exp"), "EDIT")
        ConfigError: tracking.experiment must be an experiment (and its runs) that user 'bob' has EDIT ...
    """
    if not is_refusal(error):
        return None
    code = str(error.error_code)
    user = server_user()
    if code == "UNAUTHENTICATED":
        who = f"user {user!r}: wrong password, or no such user" if user else "a request without credentials"
        return ServerRefusal(*server, f"a server that accepts the credentials sent (it refused {who}: "
                             f"401 not authenticated; set {CREDENTIALS['http']})", code)
    return ServerRefusal(*experiment, f"an experiment (and its runs) that user {user!r} has {need} "
                         f"permission on (the server answered 403 permission denied; ask a user with "
                         f"MANAGE on it, or the server's admin, to grant {need})", code)


@contextlib.contextmanager
def server_refusals(server: tuple[str, str], experiment: tuple[str, str], need: str):
    """Inside the block, a server's 401 or 403 becomes `refusal`'s ServerRefusal; other errors pass."""
    from mlflow.exceptions import MlflowException

    try:
        yield
    except MlflowException as error:
        found = refusal(error, server, experiment, need)
        if found is None:
            raise
        raise found from None


def write_access_lost(refused: ServerRefusal, uri: str, experiment: str,
                      left_running: list[str]) -> ServerRefusal:
    """The line for a server that refused a user mid-run (EDIT revoked, password changed): what the
    user does, and the runs left RUNNING with the command that ends them.

    With EDIT gone the user can no longer end the runs they opened, and nothing else can for them:
    someone who still has EDIT on the experiment ends them, with MLflow's own client.

    Args:
        refused: the server's refusal of a request to a run already open.
        uri: the server; experiment: the experiment's name (tracking.experiment).
        left_running: the runs the server refused to end, in the order to name them.
    """
    user = server_user()
    if refused.code == "UNAUTHENTICATED":
        what = (f"a server that still accepts the credentials of user {user!r}: it refused them after the "
                f"run started (401 not authenticated: a changed or expired password?); set the current "
                f"ones in {CREDENTIALS['http']}")
    else:
        what = (f"an experiment that user {user!r} can still record to: the server refused it after the run "
                f"started (403 permission denied: EDIT was revoked); ask a user with MANAGE on it, or the "
                f"server's admin, to grant EDIT again")
    what += ", then run the same command again with resume=true"
    if left_running:
        quoted = ", ".join(repr(run) for run in left_running)
        what += (f". Left RUNNING, as user {user!r} can no longer end them: run {', '.join(left_running)}; "
                 f"a user with EDIT on the experiment ends them: `python -c \"import mlflow; "
                 f"client = mlflow.MlflowClient({uri!r}); "
                 f"[client.set_terminated(run, 'FAILED') for run in ({quoted},)]\"`")
    key, received = ("tracking.uri", uri) if refused.code == "UNAUTHENTICATED" else ("tracking.experiment",
                                                                                      experiment)
    return ServerRefusal(key, received, what, refused.code)
