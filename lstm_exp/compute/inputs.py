"""The run's input arrays: the sequences, their lengths and the initial states (NumPy only)."""

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lstm_exp.compute.files import DEFAULT_BUDGET, FLOAT32_MAX, read_csv, read_npy, read_npz
from lstm_exp.config import names
from lstm_exp.config.specs import InputSpec, ModelSpec
from lstm_exp.errors import ConfigError

WITHIN_FLOAT32 = "finite numbers within float32's range (|x| <= 3.4e38)"


@dataclass
class InputData:
    """What the stack runs on."""

    x: np.ndarray  # (B, T, F) float32; a one-step input has T = 1
    one_step: bool  # the input was (B, F): report outputs as (B, H), as the tutorial did
    lengths: np.ndarray | None  # (B,) int32, or None for full-length rows
    initial_state: dict[str, np.ndarray]  # `layer_{k}/[fw/|bw/]{h,c}`, float32


def _as_sequences(key: str, source: object, array: np.ndarray) -> tuple[np.ndarray, bool]:
    if array.ndim not in (2, 3) or 0 in array.shape:
        allowed = f"a non-empty array of rank 2 (B, F) or 3 (B, T, F); got shape {array.shape}"
        raise ConfigError(key, source, allowed)
    if not np.all(np.abs(array) <= FLOAT32_MAX):  # False for NaN; beyond float32 would become inf
        raise ConfigError(key, source, WITHIN_FLOAT32)
    one_step = array.ndim == 2
    return (array[:, None, :] if one_step else array).astype(np.float32), one_step


def _from_values(plain: object) -> np.ndarray:
    try:
        array = np.array(plain, dtype=np.float64)
    except OverflowError:  # an integer beyond float64, e.g. 10**400
        raise ConfigError("input.values", plain, WITHIN_FLOAT32) from None
    except (ValueError, TypeError):
        raise ConfigError(
            "input.values", plain, "a rectangular nested list of numbers (B, F) or (B, T, F)"
        ) from None
    if _has_non_numbers(plain):
        raise ConfigError("input.values", plain, "numbers only (no booleans or strings)")
    return array


def _has_non_numbers(value: object) -> bool:
    if isinstance(value, list):
        return any(_has_non_numbers(v) for v in value)
    return isinstance(value, bool | str) or value is None


def _from_file(path_text: str, budget: int) -> np.ndarray:
    key, allowed = "input.path", "an existing .npy, .npz or .csv file of numbers"
    suffix = Path(path_text).suffix
    if suffix == ".csv":
        # A CSV holds one sequence: a row per time step, a column per feature -> (1, T, F).
        return read_csv(path_text, key, budget, allowed)[None]
    if suffix == ".npy":
        return read_npy(path_text, key, budget, allowed)
    if suffix == ".npz":
        arrays = read_npz(path_text, key, budget, allowed)
        name = "input" if "input" in arrays else next(iter(arrays)) if len(arrays) == 1 else None
        if name is None:
            raise ConfigError(key, path_text, "an .npz with an 'input' array or a single array")
        return arrays[name]
    raise ConfigError(key, path_text, allowed)


def load_sequences(inp: InputSpec, seed: int, budget: int = DEFAULT_BUDGET) -> tuple[np.ndarray, bool]:
    """The input as (B, T, F) float32, and whether it was given as one step (B, F).

    `budget`: bytes a file's arrays may take (`run.max_memory_gb`), checked before it is read.
    """
    if inp.values is not None:
        return _as_sequences("input.values", inp.values, _from_values(inp.values))
    if inp.path is not None:
        array = _from_file(inp.path, budget).astype(np.float64)  # the budget counted this copy
        return _as_sequences("input.path", inp.path, array)
    rng = np.random.default_rng([seed, 7])  # a stream of its own: weights use [seed, k, n]
    shape = (inp.batch, inp.timesteps, inp.features)
    if inp.distribution == "uniform":
        return rng.uniform(-1.0, 1.0, size=shape).astype(np.float32), False
    return rng.standard_normal(shape).astype(np.float32), False


def check_lengths(lengths: object, batch: int, steps: int) -> np.ndarray | None:
    """Validates `input.lengths` against the input's (B, T)."""
    if lengths is None:
        return None
    values = list(lengths)
    allowed = f"a list of {batch} integer(s), one per row of the batch, each from 1 to T={steps}"
    if len(values) != batch or any(
        isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= steps for n in values
    ):
        raise ConfigError("input.lengths", values, allowed)
    return np.asarray(values, dtype=np.int32)


def initial_states(
    setting: str, spec: ModelSpec, batch: int, seed: int, budget: int = DEFAULT_BUDGET
) -> dict[str, np.ndarray]:
    """Per-layer initial h and c: `zeros` (empty dict), `random` (seeded) or read from an .npz."""
    if setting == "zeros":
        return {}
    expected = {}
    for k, units in enumerate(spec.units):
        for d in spec.directions:
            expected[names.array_name(k, names.H, d)] = (batch, spec.hidden_size(k))
            if spec.cell == "lstm":
                expected[names.array_name(k, names.C, d)] = (batch, units)
    if setting == "random":
        rng = np.random.default_rng([seed, 11])
        return {n: rng.uniform(-1.0, 1.0, s).astype(np.float32) for n, s in expected.items()}
    allowed = "zeros, random, or an .npz holding " + ", ".join(f"{n} {s}" for n, s in expected.items())
    if Path(setting).suffix != ".npz":
        raise ConfigError("input.initial_state", setting, allowed)
    found = read_npz(setting, "input.initial_state", budget, allowed)  # finite, within float32
    for name, shape in expected.items():
        if name not in found or found[name].shape != shape:
            got = found[name].shape if name in found else "missing"
            raise ConfigError("input.initial_state", setting, f"{allowed}; {name} is {got}")
    return {n: found[n].astype(np.float32) for n in expected}
