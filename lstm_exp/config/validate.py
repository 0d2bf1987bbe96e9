"""Validation of a composed config and the shapes it implies, before TensorFlow is imported."""

import math
from dataclasses import dataclass

from omegaconf import DictConfig

from lstm_exp.config.store_checks import check_names, check_store_uri
from lstm_exp.errors import ConfigError

CELLS = ("lstm", "gru", "simple_rnn")
IMPLEMENTATIONS = ("auto", "keras", "fused", "native")
LAYOUTS = ("auto", "keras", "tf1", "torch")
DISTRIBUTIONS = ("normal", "uniform")
MAX_UNITS = 16384  # larger layers do not fit a (4H, H) kernel in sane memory
# Bounds on the other numbers, so that a huge value is a ConfigError rather than an OverflowError
# deep in NumPy, Keras or the socket library; the memory estimate then refuses large products.
MAX_SIZE = 10**7  # input.batch, input.timesteps, input.features, each
MAX_REPEAT = 100_000  # run.repeat
MAX_MEMORY_GB = 4096.0  # run.max_memory_gb
MAX_TIMEOUT_S = 3600.0  # tracking.timeout_s
FLOAT32_MAX = 3.4028234663852886e38  # clips and the forget bias become float32 tensors
GATES = ("i", "f", "g", "o")
FAULTS = (None, "forward", "pause")


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

    @property
    def directions(self) -> tuple[str, ...]:
        """Name prefixes of one layer's directions: ``("",)`` or ``("fw/", "bw/")``."""
        return ("fw/", "bw/") if self.bidirectional else ("",)

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
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= FLOAT32_MAX:
        raise ConfigError(key, value, "null or a positive finite number up to 3.4e38 (float32)")
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
        if spec.implementation in ("fused", "native"):
            raise ConfigError("model.implementation", spec.implementation,
                              "keras or auto unless model.cell=lstm")
    if spec.proj_clip and not spec.proj_size:
        raise ConfigError("model.proj_clip", spec.proj_clip, "null unless model.proj_size is set")
    _choice("model.weights.layout", model.weights.layout, LAYOUTS)
    if not abs(model.weights.forget_bias) <= FLOAT32_MAX:  # False for NaN
        raise ConfigError("model.weights.forget_bias", model.weights.forget_bias,
                          "a finite number within float32's range (|x| <= 3.4e38)")
    return spec


def validate_input_settings(inp: DictConfig) -> None:
    """Checks the scalar settings of the input section (the arrays are checked in `inputs.py`)."""
    for key in ("batch", "timesteps", "features"):
        _positive_int(f"input.{key}", inp[key], MAX_SIZE)
    _choice("input.distribution", inp.distribution, DISTRIBUTIONS)
    if inp.name == "file" and not inp.path:
        raise ConfigError("input.path", inp.path, "the path of a .npy, .npz or .csv file (input=file)")
    if inp["values"] is not None and inp.path is not None:
        raise ConfigError("input.path", inp.path, "null when input.values is given")


def validate_run_settings(run: DictConfig) -> None:
    """Checks `run.*`: a negative repeat or a zero memory limit would otherwise pass silently."""
    if not 0 <= run.repeat <= MAX_REPEAT:  # the schema makes it an int
        raise ConfigError("run.repeat", run.repeat, f"an integer from 0 (no timing) to {MAX_REPEAT}")
    if not 0 < run.max_memory_gb <= MAX_MEMORY_GB:  # False for NaN
        allowed = f"a positive number of GB up to {MAX_MEMORY_GB:g}"
        raise ConfigError("run.max_memory_gb", run.max_memory_gb, allowed)
    if run.inject_fault not in FAULTS:
        raise ConfigError("run.inject_fault", run.inject_fault, "null, forward or pause (tests only)")


def validate_tracking(tracking: DictConfig) -> None:
    """Checks `tracking.*` before any computation, so that a typo never costs a run's time."""
    if not tracking.enabled:
        return
    if tracking.uri is not None:
        check_store_uri(tracking.uri)
    check_names(tracking.experiment, tracking.run_name)
    if not 0 < tracking.timeout_s <= MAX_TIMEOUT_S:  # False for NaN; huge values crash the socket library
        allowed = f"a positive number of seconds up to {MAX_TIMEOUT_S:g}"
        raise ConfigError("tracking.timeout_s", tracking.timeout_s, allowed)


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
