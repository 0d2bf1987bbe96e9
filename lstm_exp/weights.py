"""Weights in and out: the keras-layout dict every engine uses, checked against the model."""

from pathlib import Path

import numpy as np
from omegaconf import DictConfig

from lstm_exp.config import ModelSpec
from lstm_exp.errors import ConfigError
from lstm_exp.initializers import GATE_COUNT
from lstm_exp.reference import directions


def expected_weight_shapes(spec: ModelSpec, features: int) -> dict[str, tuple[int, ...]]:
    """Every keras-layout weight name the model needs, with its shape."""
    shapes: dict[str, tuple[int, ...]] = {}
    fan_in = features
    for k, units in enumerate(spec.units):
        gates = GATE_COUNT[spec.cell] * units
        for d in directions(spec):
            pre = f"layer_{k}/{d}"
            shapes[pre + "kernel"] = (fan_in, gates)
            shapes[pre + "recurrent_kernel"] = (spec.hidden_size(k), gates)
            shapes[pre + "bias"] = (2, gates) if spec.cell == "gru" else (gates,)
            if spec.peepholes:
                shapes.update({f"{pre}peephole_{g}": (units,) for g in ("i", "f", "o")})
            if spec.proj_size:
                shapes[pre + "projection"] = (units, spec.proj_size)
        fan_in = spec.output_size(k)
    return shapes


def check_weights(
    weights: dict[str, np.ndarray], spec: ModelSpec, features: int, key: str, source: str
) -> dict[str, np.ndarray]:
    """Checks names and shapes against the model; returns the needed arrays as float32.

    Raises:
        ConfigError: naming the first missing or mis-shaped array, with both shapes.
    """
    expected = expected_weight_shapes(spec, features)
    for name, shape in expected.items():
        if name not in weights:
            raise ConfigError(key, source, f"weights holding {name} {shape} for this model; it is missing")
        found = tuple(np.shape(weights[name]))
        if found != shape:
            hint = f" (the input has F={features} features)" if name.endswith("0/kernel") else ""
            raise ConfigError(key, source, f"weights with {name} of shape {shape}{hint}; found {found}")
        if not np.all(np.isfinite(weights[name])):
            raise ConfigError(key, source, f"finite weights; {name} holds NaN or infinity")
    return {name: np.asarray(weights[name], np.float32) for name in expected}


def read_npz(path: Path, key: str) -> dict[str, np.ndarray]:
    """Reads every array of an .npz, refusing pickles."""
    try:
        with np.load(path, allow_pickle=False) as archive:
            return {name: archive[name] for name in archive.keys()}
    except (ValueError, OSError) as error:
        raise ConfigError(key, str(path), f"a readable .npz of weights ({error})") from None


def load_weights(weights_cfg: DictConfig, spec: ModelSpec, features: int) -> dict[str, np.ndarray]:
    """Reads `model.weights.path` into the keras layout and checks it against the model."""
    key, path = "model.weights.path", Path(weights_cfg.path)
    if path.suffix != ".npz" or not path.is_file():
        raise ConfigError(key, weights_cfg.path, "an existing .npz file of weights")
    return check_weights(read_npz(path, key), spec, features, key, weights_cfg.path)
