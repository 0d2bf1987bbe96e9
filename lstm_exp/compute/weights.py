"""Reading `model.weights.path` in any layout and checking it against the model (NumPy, no MLflow)."""

import os
import re
from pathlib import Path

import numpy as np

from lstm_exp.compute import files
from lstm_exp.compute.layouts import (
    check_convertible,
    checkpoint_names,
    detect_layout,
    expected_weight_shapes,
    layout_shapes,
    to_keras,
    to_layout,
)
from lstm_exp.config.specs import ModelSpec, WeightsSpec
from lstm_exp.errors import ConfigError

__all__ = ["check_weights", "expected_weight_shapes", "load_weights", "read_npz", "to_layout"]


def _layer(name: str) -> int | None:
    found = re.search(r"(?:layer_|cell_|_l)(\d+)", name)
    return int(found.group(1)) if found else None


def _hint(name: str, spec: ModelSpec, features: int, found: dict | None = None) -> str:
    """Which setting a missing (found=None) or unexpected array (one of `found`) points at."""
    present = found is not None
    if "peephole" in name or "_diag" in name:
        return f" (model.peepholes={'false' if present else 'true'})"
    if "proj" in name or "weight_hr" in name:
        return " (model.proj_size=null)" if present else f" (model.proj_size={spec.proj_size})"
    if present and ("bw/" in name or "_reverse" in name) and not spec.bidirectional:
        return " (model.bidirectional=false)"
    if present and (_layer(name) or 0) >= len(spec.units):
        layers = 1 + max(n for n in map(_layer, found) if n is not None)
        return f" (the file has {layers} layers, model.units={list(spec.units)} has {len(spec.units)})"
    if re.fullmatch(r"(layer_0/|(fw/|bw/)?cell_0/|weight_ih_l0)((fw/|bw/)?kernel)?(_reverse)?", name):
        return f" (the input has F={features} features)"
    return ""


def _check_arrays(weights, expected, spec, features, key, source, labels=None):
    """Names, shapes and finiteness against `expected`; the first offending array is named."""
    labels = labels or {}
    for name, shape in expected.items():
        label = labels.get(name, name)
        if name not in weights:
            hint = _hint(name, spec, features)
            raise ConfigError(key, source, f"weights holding {label} {shape}{hint}; it is missing")
        found = tuple(np.shape(weights[name]))
        if found != shape:
            hint = _hint(name, spec, features)
            raise ConfigError(key, source, f"weights with {label} of shape {shape}{hint}; found {found}")
        if not np.all(np.isfinite(weights[name])):
            raise ConfigError(key, source, f"finite weights; {label} holds NaN or infinity")
    unexpected = sorted(set(weights) - set(expected))
    if unexpected:  # a file for another model: more layers, peepholes, a projection, a bw direction
        name = unexpected[0]
        label, hint = labels.get(name, name), _hint(name, spec, features, weights)
        raise ConfigError(
            key, source, f"weights that fit the model; found {label} {tuple(np.shape(weights[name]))}"
            f" that it has no place for{hint}"
        )


def check_weights(
    weights: dict[str, np.ndarray], spec: ModelSpec, features: int, key: str, source: str
) -> dict[str, np.ndarray]:
    """Checks keras-layout names and shapes against the model; returns the arrays as float32.

    Raises:
        ConfigError: naming the first missing, mis-shaped or unexpected array, with both shapes.
    """
    expected = expected_weight_shapes(spec, features)
    _check_arrays(weights, expected, spec, features, key, source)
    return {name: np.asarray(weights[name], np.float32) for name in expected}


def read_npz(path: Path, key: str, budget: int = files.DEFAULT_BUDGET) -> dict[str, np.ndarray]:
    """Reads every array of an .npz of weights (see `files.read_npz`: checked, never unpickled)."""
    return files.read_npz(path, key, budget, "a readable .npz of weights")


def read_checkpoint(
    prefix: str, key: str, source: str, budget: int = files.DEFAULT_BUDGET
) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """Reads a TF1 checkpoint's LSTM variables as tf1-layout arrays.

    Returns:
        (arrays by tf1 name, {tf1 name: checkpoint variable} so that errors name what the user has).
    """
    found: dict[str, str] = {}

    def select(variables: list[str]) -> list[str]:
        names, clashes = checkpoint_names(variables)
        if clashes:
            name, first, second = clashes[0]
            allowed = f"a checkpoint of one LSTM stack; both {first} and {second} would be {name}"
            raise ConfigError(key, source, allowed)
        if not names:
            allowed = "a TF1 checkpoint with LSTM variables (<scope>/<cell>/kernel); found " + ", ".join(
                variables[:8]
            )
            raise ConfigError(key, source, allowed)
        found.update(names)
        return list(names.values())

    arrays = files.read_checkpoint(prefix, key, budget, select)
    return {name: arrays[var] for name, var in found.items()}, found


def _checkpoint_prefix(source: str) -> str | None:
    # TF1's Saver writes PREFIX.index and PREFIX.data-*; users pass PREFIX, sometimes PREFIX.index.
    # os.path.isfile is False for any OSError (a name too long, a loop), where Path.is_file raises.
    if source.endswith(".index") and os.path.isfile(source):
        return source[: -len(".index")]
    if not source.endswith(".npz") and os.path.isfile(source + ".index"):
        return source
    return None


def load_weights(
    weights_spec: WeightsSpec, spec: ModelSpec, features: int, budget: int = files.DEFAULT_BUDGET
) -> dict[str, np.ndarray]:
    """Reads `model.weights.path` (an .npz in any layout, or a TF1 checkpoint prefix) into the keras layout.

    Args:
        weights_spec: `model.weights`: `path`, `layout` (`auto` detects it from the names) and
            `forget_bias` (TF1's run-time forget bias, added to a tf1 bias's forget slice).
        spec: the validated model.
        features: F, the input's last dimension.
        budget: bytes the file's arrays may take (`run.max_memory_gb`), checked before reading.

    Raises:
        ConfigError: unreadable file, a layout that does not fit the model, or a missing,
            mis-shaped or unexpected array (named as in the file, with both shapes).
    """
    key, source, layout = "model.weights.path", str(weights_spec.path), weights_spec.layout
    labels: dict[str, str] = {}
    prefix = _checkpoint_prefix(source)
    if prefix is not None:
        if layout not in ("auto", "tf1"):
            raise ConfigError("model.weights.layout", layout, "tf1 or auto for a TF1 checkpoint")
        raw, labels = read_checkpoint(prefix, key, source, budget)
        layout = "tf1"
    elif source.endswith(".npz"):
        raw = read_npz(source, key, budget)
    else:
        raise ConfigError(key, source, "an existing .npz file of weights or a TF1 checkpoint prefix")
    if layout == "auto":
        layout = detect_layout(raw)
        if layout is None:
            names = ", ".join(sorted(raw)[:6]) or "no arrays"
            allowed = "weights named as in the keras (layer_0/...), tf1 (cell_0/...) or torch (weight_ih_l0)"
            raise ConfigError(key, source, f"{allowed} layout; found {names}")
    check_convertible(spec, layout, "model.weights.layout")
    _check_arrays(raw, layout_shapes(spec, features, layout), spec, features, key, source, labels)
    keras = to_keras(raw, spec, layout, weights_spec.forget_bias)
    return {name: keras[name] for name in expected_weight_shapes(spec, features)}
