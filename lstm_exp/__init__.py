"""lstm_exp: config-driven experiments with recurrent networks.

Notebook API:
    >>> import lstm_exp
    >>> cfg = lstm_exp.compose("model=stacked", "tracking.enabled=false")
    >>> lstm_exp.execute(cfg).arrays["output"].shape
    (2, 3, 5)
"""

import os

# TensorFlow's C++ logs drown the report; set before anything imports TensorFlow.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("ABSL_MIN_LOG_LEVEL", "3")
# lstm_exp prints its own links (to the UI's training view); MLflow's would repeat them per run.
os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
# MLflow draws a tqdm bar for every artifact it downloads once tqdm is importable (Optuna brings it):
# `compare`, `rerun` and `report` would print one per run read, between their table's lines.
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")

from lstm_exp.config.compose import compose  # noqa: E402
from lstm_exp.config.experiment import parse  # noqa: E402
from lstm_exp.errors import ConfigError  # noqa: E402


def execute(cfg):
    """Parses and runs a composed config; returns its `Result` (see `lstm_exp.compute.runner.execute`).

    Raises:
        ConfigError: a key of `cfg` at fault, or an input file that cannot be used.
    """
    from lstm_exp.compute.runner import execute as run

    return run(parse(cfg))


__all__ = ["ConfigError", "compose", "execute", "parse"]
