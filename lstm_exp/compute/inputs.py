"""The run's input arrays: the sequences, their lengths and the initial states (NumPy only)."""

import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from omegaconf import DictConfig, ListConfig, OmegaConf

from lstm_exp.compute.reference import directions
from lstm_exp.config.validate import ModelSpec
from lstm_exp.errors import ConfigError


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
    if not np.all(np.isfinite(array)):
        raise ConfigError(key, source, "finite numbers (no NaN or infinity)")
    one_step = array.ndim == 2
    return (array[:, None, :] if one_step else array).astype(np.float32), one_step


def _plain(values: object) -> object:
    return OmegaConf.to_container(values) if isinstance(values, ListConfig) else values


def _from_values(values: object) -> np.ndarray:
    plain = _plain(values)
    try:
        array = np.array(plain, dtype=np.float64)
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


def _from_file(path_text: str) -> np.ndarray:
    path = Path(path_text)
    allowed = "an existing .npy, .npz or .csv file of numbers"
    if not path.is_file():
        raise ConfigError("input.path", path_text, allowed)
    if path.stat().st_size == 0:
        raise ConfigError("input.path", path_text, allowed + " (the file is empty)")
    try:
        if path.suffix == ".csv":
            # A CSV holds one sequence: a row per time step, a column per feature -> (1, T, F).
            return np.loadtxt(path, delimiter=",", dtype=np.float64, ndmin=2)[None]
        if path.suffix == ".npz":
            with np.load(path, allow_pickle=False) as archive:
                names = list(archive.keys())
                name = "input" if "input" in names else names[0] if len(names) == 1 else None
                if name is None:
                    allowed = "an .npz with an 'input' array or a single array"
                    raise ConfigError("input.path", path_text, allowed)
                array = archive[name]
        elif path.suffix == ".npy":
            with path.open("rb") as handle:  # np.load takes any other bytes for a refused pickle
                if handle.read(6) != np.lib.format.MAGIC_PREFIX:
                    raise ConfigError("input.path", path_text, f"{allowed} (not a NumPy .npy file)")
            array = np.load(path, allow_pickle=False)  # never unpickle a user's file
        else:
            raise ConfigError("input.path", path_text, allowed)
    except ConfigError:
        raise
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as error:
        reason = "pickled object arrays are refused" if "pickle" in str(error) else "unreadable"
        raise ConfigError("input.path", path_text, f"{allowed} ({reason})") from None
    if not np.issubdtype(array.dtype, np.number) or np.issubdtype(array.dtype, np.complexfloating):
        raise ConfigError("input.path", path_text, f"{allowed}; found dtype {array.dtype}")
    return array.astype(np.float64)


def planned_shape(inp: DictConfig) -> tuple[int, int, int] | None:
    """(B, T, F) of a generated input, known before anything is allocated; None for literals and files."""
    if inp["values"] is None and inp.path is None:
        return inp.batch, inp.timesteps, inp.features
    return None


def load_sequences(inp: DictConfig, seed: int) -> tuple[np.ndarray, bool]:
    """The input as (B, T, F) float32, and whether it was given as one step (B, F)."""
    if inp["values"] is not None:
        return _as_sequences("input.values", _plain(inp["values"]), _from_values(inp["values"]))
    if inp.path is not None:
        return _as_sequences("input.path", inp.path, _from_file(inp.path))
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
    setting: str, spec: ModelSpec, batch: int, seed: int
) -> dict[str, np.ndarray]:
    """Per-layer initial h and c: `zeros` (empty dict), `random` (seeded) or read from an .npz."""
    if setting == "zeros":
        return {}
    expected = {}
    for k, units in enumerate(spec.units):
        for d in directions(spec):
            expected[f"layer_{k}/{d}h"] = (batch, spec.hidden_size(k))
            if spec.cell == "lstm":
                expected[f"layer_{k}/{d}c"] = (batch, units)
    if setting == "random":
        rng = np.random.default_rng([seed, 11])
        return {n: rng.uniform(-1.0, 1.0, s).astype(np.float32) for n, s in expected.items()}
    path = Path(setting)
    allowed = "zeros, random, or an .npz holding " + ", ".join(f"{n} {s}" for n, s in expected.items())
    if path.suffix != ".npz" or not path.is_file():
        raise ConfigError("input.initial_state", setting, allowed)
    try:
        with np.load(path, allow_pickle=False) as archive:
            found = {n: archive[n] for n in archive.keys()}
    except (ValueError, OSError, zipfile.BadZipFile):
        raise ConfigError("input.initial_state", setting, allowed + " (unreadable)") from None
    for name, shape in expected.items():
        if name not in found or found[name].shape != shape:
            got = found[name].shape if name in found else "missing"
            raise ConfigError("input.initial_state", setting, f"{allowed}; {name} is {got}")
        if not np.all(np.isfinite(found[name])):
            raise ConfigError("input.initial_state", setting, f"finite numbers in {name}")
    return {n: found[n].astype(np.float32) for n in expected}
