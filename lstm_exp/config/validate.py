"""Validation of a composed config and the shapes it implies, before TensorFlow is imported."""

import math
from dataclasses import dataclass
from urllib.parse import urlsplit

from omegaconf import DictConfig

from lstm_exp.errors import ConfigError

CELLS = ("lstm", "gru", "simple_rnn")
IMPLEMENTATIONS = ("auto", "keras", "fused")
LAYOUTS = ("auto", "keras", "tf1", "torch")
DISTRIBUTIONS = ("normal", "uniform")
MAX_UNITS = 16384  # larger layers do not fit a (4H, H) kernel in sane memory
GATES = ("i", "f", "g", "o")
FAULTS = (None, "forward")
# MLflow stores lstm_exp can record to (a file store is refused by MLflow 3 itself).
URI_SCHEMES = ("sqlite", "http", "https", "postgresql", "mysql", "mssql", "databricks")


@dataclass(frozen=True)
class ModelSpec:
    """The validated model section: what `model.py` and `reference.py` build from."""

    cell: str
    units: tuple[int, ...]
    bidirectional: bool = False
    peepholes: bool = False
    cell_clip: float | None = None
    proj_size: int | None = None
    proj_clip: float | None = None
    implementation: str = "auto"

    @property
    def has_extras(self) -> bool:
        """True when the TF1 LSTMCell extras need the custom cell instead of keras.layers.LSTM."""
        return bool(self.peepholes or self.cell_clip or self.proj_size or self.proj_clip)

    def hidden_size(self, k: int) -> int:
        """Size of one direction's h of layer k (the projection size where there is one)."""
        return self.proj_size or self.units[k]

    def output_size(self, k: int) -> int:
        """Feature size of layer k's output sequence (both directions concatenated)."""
        return self.hidden_size(k) * (2 if self.bidirectional else 1)


def _positive_int(key: str, value: object, limit: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0 or (
        limit is not None and value > limit
    ):
        bound = f" up to {limit}" if limit else ""
        raise ConfigError(key, value, f"a positive integer{bound}")
    return value


def _choice(key: str, value: object, options: tuple[str, ...]) -> str:
    if value not in options:
        raise ConfigError(key, value, "one of " + ", ".join(options))
    return value


def _positive_float(key: str, value: object) -> float | None:
    if value is None:
        return None
    if not isinstance(value, int | float) or not math.isfinite(value) or value <= 0:
        raise ConfigError(key, value, "null or a positive finite number")
    return float(value)


def validate_model(model: DictConfig) -> ModelSpec:
    """Checks the model section and returns it as a `ModelSpec`.

    Example:
        >>> validate_model(OmegaConf.create({"cell": "lstm", "units": [4, 5], ...})).units
        (4, 5)
    """
    cell = _choice("model.cell", model.cell, CELLS)
    units = list(model.units) if model.units is not None else []
    if not units:
        raise ConfigError("model.units", model.units, "a non-empty list of positive integers")
    for k, size in enumerate(units):
        _positive_int(f"model.units[{k}]", size, MAX_UNITS)
    spec = ModelSpec(
        cell=cell,
        units=tuple(units),
        bidirectional=bool(model.bidirectional),
        peepholes=bool(model.peepholes),
        cell_clip=_positive_float("model.cell_clip", model.cell_clip),
        proj_size=None
        if model.proj_size is None
        else _positive_int("model.proj_size", model.proj_size, MAX_UNITS),
        proj_clip=_positive_float("model.proj_clip", model.proj_clip),
        implementation=_choice("model.implementation", model.implementation, IMPLEMENTATIONS),
    )
    if cell != "lstm":
        for key in ("peepholes", "cell_clip", "proj_size", "proj_clip"):
            if model[key] not in (None, False):
                raise ConfigError(f"model.{key}", model[key], "unset unless model.cell=lstm")
        if spec.implementation == "fused":
            raise ConfigError("model.implementation", "fused", "keras or auto unless model.cell=lstm")
    if spec.proj_clip and not spec.proj_size:
        raise ConfigError("model.proj_clip", spec.proj_clip, "null unless model.proj_size is set")
    _choice("model.weights.layout", model.weights.layout, LAYOUTS)
    if not math.isfinite(model.weights.forget_bias):
        raise ConfigError("model.weights.forget_bias", model.weights.forget_bias, "a finite number")
    return spec


def validate_input_settings(inp: DictConfig) -> None:
    """Checks the scalar settings of the input section (the arrays are checked in `inputs.py`)."""
    for key in ("batch", "timesteps", "features"):
        _positive_int(f"input.{key}", inp[key])
    _choice("input.distribution", inp.distribution, DISTRIBUTIONS)
    if inp.name == "file" and not inp.path:
        raise ConfigError("input.path", inp.path, "the path of a .npy, .npz or .csv file (input=file)")
    if inp["values"] is not None and inp.path is not None:
        raise ConfigError("input.path", inp.path, "null when input.values is given")


def validate_run_settings(run: DictConfig) -> None:
    """Checks `run.*`: a negative repeat or a zero memory limit would otherwise pass silently."""
    if run.repeat < 0:  # the schema makes it an int
        raise ConfigError("run.repeat", run.repeat, "a non-negative integer (0 = no timing)")
    if not math.isfinite(run.max_memory_gb) or run.max_memory_gb <= 0:
        raise ConfigError("run.max_memory_gb", run.max_memory_gb, "a positive number of GB")
    if run.inject_fault not in FAULTS:
        raise ConfigError("run.inject_fault", run.inject_fault, "null or forward (tests only)")


def validate_tracking(tracking: DictConfig) -> None:
    """Checks `tracking.*` before any computation, so that a typo never costs a run's time."""
    if not tracking.enabled:
        return
    if tracking.uri is not None and urlsplit(tracking.uri).scheme.split("+")[0] not in URI_SCHEMES:
        allowed = "null (sqlite:///<launch dir>/mlflow.db) or a URI of scheme " + ", ".join(URI_SCHEMES)
        raise ConfigError("tracking.uri", tracking.uri, allowed)
    if not (tracking.experiment or "").strip():
        raise ConfigError("tracking.experiment", tracking.experiment, "a non-empty experiment name")
    if not math.isfinite(tracking.timeout_s) or tracking.timeout_s <= 0:
        raise ConfigError("tracking.timeout_s", tracking.timeout_s, "a positive number of seconds")


def expected_shapes(
    spec: ModelSpec, batch: int, timesteps: int, features: int, one_step: bool
) -> dict[str, tuple[int, ...]]:
    """Every array's shape, computed from the config alone (no TensorFlow).

    Example:
        >>> expected_shapes(ModelSpec("lstm", (4, 5)), 2, 3, 6, one_step=False)["output"]
        (2, 3, 5)
    """
    shapes: dict[str, tuple[int, ...]] = {
        "input": (batch, features) if one_step else (batch, timesteps, features)
    }
    directions = ("fw", "bw") if spec.bidirectional else ("",)
    for k, units in enumerate(spec.units):
        pre = f"layer_{k}/"
        shapes[pre + "sequence"] = (batch, timesteps, spec.output_size(k))
        shapes[pre + "h"] = (batch, spec.output_size(k))
        if spec.cell == "lstm":
            shapes[pre + "c"] = (batch, units * len(directions))
        for d in directions if spec.bidirectional else ():
            shapes[f"{pre}{d}/h"] = (batch, spec.hidden_size(k))
            if spec.cell == "lstm":
                shapes[f"{pre}{d}/c"] = (batch, units)
        if spec.cell == "lstm":
            for d in directions:
                for gate in GATES:
                    shapes[f"{pre}{d + '/' if d else ''}gates/{gate}"] = (batch, timesteps, units)
    last = spec.output_size(len(spec.units) - 1)
    shapes["output"] = (batch, last) if one_step else (batch, timesteps, last)
    return shapes


def estimate_bytes(shapes: dict[str, tuple[int, ...]], spec: ModelSpec, features: int) -> int:
    """Float32 bytes the run will hold: every result array, the weights, and working copies."""
    arrays = sum(math.prod(s) for s in shapes.values())
    weights, fan_in = 0, features
    for k, units in enumerate(spec.units):
        weights += (fan_in + spec.hidden_size(k) + 2) * 4 * units
        fan_in = spec.proj_size or units
    # x3: the TensorFlow result, its NumPy copy and the float64 reference recomputation.
    return 4 * 3 * (arrays + weights)
