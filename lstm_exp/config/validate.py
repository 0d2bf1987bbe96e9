"""Validation of a composed config and the shapes it implies, before TensorFlow is imported."""

import math

from omegaconf import DictConfig, OmegaConf

from lstm_exp.config import names
from lstm_exp.config.memory import (
    INPUT_COPIES,
    POOL_CAP_BYTES,
    POOL_FRACTION,
    TF_BASE_BYTES,
    check_rows,
    reference_row_bytes,
)
from lstm_exp.config.names import GATES
from lstm_exp.config.specs import InputSpec, ModelSpec, RunSpec, TrackingSpec, WeightsSpec
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
    if spec.proj_clip and not spec.proj_size:
        raise ConfigError("model.proj_clip", spec.proj_clip, "null unless model.proj_size is set")
    if spec.implementation == "native" and not spec.native_stack:
        raise ConfigError("model.implementation", spec.implementation,
                          "keras or auto unless the model is a plain unidirectional LSTM or GRU stack")
    if spec.implementation == "fused" and not spec.plain_lstm_stack:
        raise ConfigError("model.implementation", spec.implementation,
                          "keras or auto unless the model is a plain unidirectional LSTM stack")
    return spec


def validate_weights(weights: DictConfig) -> WeightsSpec:
    """Checks `model.weights` (the file itself is read, and checked, when the run prepares)."""
    _choice("model.weights.layout", weights.layout, LAYOUTS)
    if not abs(weights.forget_bias) <= FLOAT32_MAX:  # False for NaN
        raise ConfigError("model.weights.forget_bias", weights.forget_bias,
                          "a finite number within float32's range (|x| <= 3.4e38)")
    return WeightsSpec(weights.path or None, weights.layout, float(weights.forget_bias))


def validate_input(inp: DictConfig) -> InputSpec:
    """Checks the scalar settings of the input section (the arrays are checked as they are read)."""
    for key in ("batch", "timesteps", "features"):
        _positive_int(f"input.{key}", inp[key], MAX_SIZE)
    _choice("input.distribution", inp.distribution, DISTRIBUTIONS)
    if inp.name == "file" and not inp.path:
        raise ConfigError("input.path", inp.path, "the path of a .npy, .npz or .csv file (input=file)")
    if inp["values"] is not None and inp.path is not None:
        raise ConfigError("input.path", inp.path, "null when input.values is given")
    values = OmegaConf.to_container(inp["values"]) if OmegaConf.is_config(inp["values"]) else inp["values"]
    lengths = None if inp.lengths is None else tuple(inp.lengths)  # checked against (B, T) once read
    return InputSpec(inp.name, values, inp.batch, inp.timesteps, inp.features, inp.distribution,
                     inp.path, lengths, inp.initial_state)


def validate_run(run: DictConfig) -> RunSpec:
    """Checks `run.*`: a negative repeat or a zero memory limit would otherwise pass silently."""
    if not 0 <= run.repeat <= MAX_REPEAT:  # the schema makes it an int
        raise ConfigError("run.repeat", run.repeat, f"an integer from 0 (no timing) to {MAX_REPEAT}")
    if not 0 < run.max_memory_gb <= MAX_MEMORY_GB:  # False for NaN
        allowed = f"a positive number of GB up to {MAX_MEMORY_GB:g}"
        raise ConfigError("run.max_memory_gb", run.max_memory_gb, allowed)
    return RunSpec(run.repeat, float(run.max_memory_gb), bool(run.print_arrays))


def validate_tracking(tracking: DictConfig) -> TrackingSpec:
    """Checks `tracking.*` before any computation, so that a typo never costs a run's time."""
    spec = TrackingSpec(bool(tracking.enabled), tracking.uri, tracking.experiment, tracking.run_name,
                        float(tracking.timeout_s), bool(tracking.log_model))
    if not tracking.enabled:
        return spec
    if tracking.uri is not None:
        check_store_uri(tracking.uri)
    check_names(tracking.experiment, tracking.run_name)
    if not 0 < tracking.timeout_s <= MAX_TIMEOUT_S:  # False for NaN; huge values crash the socket library
        allowed = f"a positive number of seconds up to {MAX_TIMEOUT_S:g}"
        raise ConfigError("tracking.timeout_s", tracking.timeout_s, allowed)
    return spec


def expected_shapes(
    spec: ModelSpec, batch: int, timesteps: int, features: int, one_step: bool
) -> dict[str, tuple[int, ...]]:
    """Every array's shape, computed from the config alone (no TensorFlow).

    Example:
        >>> expected_shapes(ModelSpec("lstm", (4, 5)), 2, 3, 6, one_step=False)["output"]
        (2, 3, 5)
    """
    shapes: dict[str, tuple[int, ...]] = {
        names.INPUT: (batch, features) if one_step else (batch, timesteps, features)
    }
    for k, units in enumerate(spec.units):
        shapes[names.array_name(k, names.SEQUENCE)] = (batch, timesteps, spec.output_size(k))
        shapes[names.array_name(k, names.H)] = (batch, spec.output_size(k))
        if spec.cell == "lstm":
            shapes[names.array_name(k, names.C)] = (batch, units * len(spec.directions))
        for d in spec.directions if spec.bidirectional else ():
            shapes[names.array_name(k, names.H, d)] = (batch, spec.hidden_size(k))
            if spec.cell == "lstm":
                shapes[names.array_name(k, names.C, d)] = (batch, units)
        if spec.cell == "lstm":
            for d in spec.directions:
                for gate in GATES:
                    shapes[names.gate_name(k, gate, d)] = (batch, timesteps, units)
    last = spec.output_size(len(spec.units) - 1)
    shapes[names.OUTPUT] = (batch, last) if one_step else (batch, timesteps, last)
    return shapes


def estimate_bytes(shapes: dict[str, tuple[int, ...]], spec: ModelSpec, features: int) -> int:
    """The run's peak resident memory, in bytes: what `run.max_memory_gb` is checked against.

    TensorFlow's base, the engine's float32 arrays (`output` is the last layer's sequence itself),
    the input with the engine's copy of it, the weights, one chunk of the float64 check, and the
    libraries' pools beyond these (see `config/memory.py`; measured against real peaks by
    scripts/bench_memory.py).

    Example:
        >>> estimate_bytes(expected_shapes(ModelSpec("lstm", (256, 256)), 32, 2048, 64, False), ...) / 2**20
        1604.3...
    """
    arrays = sum(math.prod(s) for n, s in shapes.items() if n not in (names.INPUT, names.OUTPUT))
    inputs = INPUT_COPIES * math.prod(shapes[names.INPUT])
    weights, fan_in = 0, features
    for k, units in enumerate(spec.units):
        weights += len(spec.directions) * (fan_in + spec.hidden_size(k) + 2) * 4 * units
        fan_in = spec.output_size(k)
    counted = 4 * (arrays + inputs + weights) + check_rows(shapes) * reference_row_bytes(shapes)
    return TF_BASE_BYTES + counted + min(POOL_CAP_BYTES, int(POOL_FRACTION * counted))


def largest_arrays(shapes: dict[str, tuple[int, ...]]) -> str:
    """What takes most of the run's float32 arrays: `gates` (LSTM's four per layer) or `sequences`."""
    gates = sum(math.prod(s) for n, s in shapes.items()
                if (parsed := names.parse_array_name(n)) is not None and parsed.gate)
    other = sum(math.prod(s) for n, s in shapes.items() if n != names.OUTPUT) - gates
    return "gates" if gates > other else "sequences"
