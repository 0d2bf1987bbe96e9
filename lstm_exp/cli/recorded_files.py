"""A recorded run's config, model and arrays, read from its store for the commands that analyse it.

    run, files = read_run(run_ref, uri, ("weights.npz", "states.npz"), optional=("readout.npz",))

The store is opened read-only (`runs.open_store`); a run without a file it needs is one ConfigError
line naming RUN_ID.
"""

import tempfile
from dataclasses import dataclass

import numpy as np
from omegaconf import OmegaConf

from lstm_exp.compute import files
from lstm_exp.compute.weights import check_weights
from lstm_exp.config import names
from lstm_exp.config.specs import ModelSpec
from lstm_exp.config.validate import validate_model
from lstm_exp.errors import ConfigError
from lstm_exp.record.runs import download, find_run, open_store

KEY = "RUN_ID"


@dataclass
class RecordedRun:
    """What the analyses read of one run."""

    run: object  # the MLflow Run
    spec: ModelSpec
    weights: dict[str, np.ndarray]  # keras layout, checked against the spec
    features: int  # F, the first layer's input width
    states: dict[str, np.ndarray]  # states.npz
    readout: dict[str, np.ndarray] | None  # readout.npz of a trained run, else None

    @property
    def run_id(self) -> str:
        return self.run.info.run_id


def read_run(run_ref: str, uri: str | None, need_weights: bool = True) -> tuple[RecordedRun, str]:
    """The run `run_ref` (an id or a unique prefix) with its files, and the store's URI.

    Raises:
        ConfigError: an unknown run, or one without config.yaml, states.npz or (`need_weights`)
            weights.npz.
    """
    with open_store(uri) as (client, uri), tempfile.TemporaryDirectory(prefix="lstm_exp_run_") as tmp:
        run = find_run(client, run_ref, key=KEY)
        run_id = run.info.run_id
        config_path = download(client, run_id, "config.yaml", tmp, KEY)
        states = files.read_npz(download(client, run_id, "states.npz", tmp, KEY), KEY, files.DEFAULT_BUDGET,
                                "a run whose states.npz can be read", values=False)
        raw_weights = readout = None
        if need_weights:
            raw_weights = files.read_npz(download(client, run_id, "weights.npz", tmp, KEY), KEY,
                                         files.DEFAULT_BUDGET, "a run whose weights.npz can be read")
            try:
                readout_path = download(client, run_id, names.READOUT_FILE, tmp, KEY)
                readout = files.read_npz(readout_path, KEY, files.DEFAULT_BUDGET, "a readable readout.npz")
            except ConfigError:
                readout = None  # an untrained run has no readout: its fixed points are reported without it
        cfg = OmegaConf.load(config_path)
    spec = validate_model(cfg.model)
    features = int(np.shape(states[names.INPUT])[-1])
    weights = check_weights(raw_weights, spec, features, KEY, run_id) if need_weights else {}
    return RecordedRun(run, spec, weights, features, states, readout), uri


def recorded_input(run: RecordedRun) -> np.ndarray:
    """The recorded input as (B, T, F): a one-step run's (B, F) gets its time axis back."""
    x = np.asarray(run.states[names.INPUT])
    return x[:, None, :] if x.ndim == 2 else x
