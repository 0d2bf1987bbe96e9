"""`http_bounds`: how long MLflow's requests to a tracking server may take, for one block of work.

MLflow's own defaults (7 retries with backoff, 120 s per try) make a request to a dead server take
minutes. MLflow takes its timeout and retry count only from environment variables, read at each
request: neither `MlflowClient` nor its REST store accepts them as arguments. So they are set for the
block that makes the requests, and removed as it ends; a value the user set is left as it is.
"""

import contextlib
import os

MAX_RETRIES = 2


@contextlib.contextmanager
def http_bounds(timeout_s: float):
    """MLflow's HTTP requests inside the block wait `timeout_s` per try and retry `MAX_RETRIES` times.

    Only the variables not set already are set, and only those are removed at the end: nothing after
    the block sees them, and a block inside another keeps the outer one's. (A process started inside
    the block inherits them, as it inherits the user's.)

    Example:
        >>> with http_bounds(15.0):
        ...     client.get_run(run_id)  # a dead server fails after ~3 tries of 15 s, not minutes
    """
    bounds = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": str(MAX_RETRIES),
              "MLFLOW_HTTP_REQUEST_TIMEOUT": str(int(max(timeout_s, 1)))}
    added = [name for name in bounds if name not in os.environ]
    os.environ.update({name: bounds[name] for name in added})
    try:
        yield
    finally:
        for name in added:
            os.environ.pop(name, None)
