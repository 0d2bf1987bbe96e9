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


def server_user() -> str | None:
    """The user MLflow sends to a server: the environment's, else its credentials file's."""
    from mlflow.utils.credentials import read_mlflow_creds

    return read_mlflow_creds().username


def refusal(error: Exception, server: tuple[str, str], experiment: tuple[str, str],
            need: str) -> ConfigError | None:
    """The one-line ConfigError for a server's 401 or 403 (`error` an MlflowException), else None.

    Args:
        server: (key, value) a 401 is reported under: the option or config key of the URI, and the URI.
        experiment: (key, value) a 403 is reported under: the experiment, or the run, asked for.
        need: the permission the command needs on the experiment: "EDIT" to record, "READ" to read.

    Example:
        >>> refusal(error_403, ("tracking.uri", url), ("tracking.experiment", "lstm_exp"), "EDIT")
        ConfigError: tracking.experiment must be an experiment (and its runs) that user 'bob' has EDIT ...
    """
    code = str(getattr(error, "error_code", ""))
    if code not in ("UNAUTHENTICATED", "PERMISSION_DENIED"):
        return None
    user = server_user()
    if code == "UNAUTHENTICATED":
        who = f"user {user!r}: wrong password, or no such user" if user else "a request without credentials"
        return ConfigError(*server, f"a server that accepts the credentials sent (it refused {who}: "
                           f"401 not authenticated; set {CREDENTIALS['http']})")
    return ConfigError(*experiment, f"an experiment (and its runs) that user {user!r} has {need} "
                       f"permission on (the server answered 403 permission denied; ask a user with "
                       f"MANAGE on it, or the server's admin, to grant {need})")


@contextlib.contextmanager
def server_refusals(server: tuple[str, str], experiment: tuple[str, str], need: str):
    """Inside the block, a server's 401 or 403 becomes `refusal`'s ConfigError; other errors pass."""
    from mlflow.exceptions import MlflowException

    try:
        yield
    except MlflowException as error:
        found = refusal(error, server, experiment, need)
        if found is None:
            raise
        raise found from None
