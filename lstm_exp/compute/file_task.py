"""`task=file`: training data from the user's own .npz, checked member by member before training.

The file (`task.path`) is read by `files.read_npz` (headers checked before reading, nothing
unpickled, `run.max_memory_gb` honoured, NaN and infinity refused) and must hold:

    x            (N, T, F)   numbers
    y            float: (N,) or (N, D) read out from the final state, (N, T, D) per step -> MSE
                 integer: (N,) a class per sequence, (N, T) a class per step -> cross-entropy
    x_val, y_val optional, both or neither: the validation split (else a seeded task.val_fraction of x)
    lengths      optional (N,): valid steps per sequence, 1..T (TF1 dynamic_rnn semantics: the final
                 state is the one at the last valid step; per-step losses leave later steps out)
    lengths_val  optional, with x_val and lengths

Baselines, on the validation split: MSE of always answering the training targets' mean (per output);
cross-entropy of always answering the training split's class frequencies (add-one smoothed, so that a
class absent from training costs log(N + K) rather than infinity; the hard majority-class answer's
cross-entropy would be infinite).

The held-out sequences that the forward pass and the analyses run on after training are the first
`HELD_OUT` of the validation split. Each split is described by a `DatasetInfo` (its digest over the
arrays trained on), which the record layer logs as an MLflow dataset.
"""

import hashlib
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from lstm_exp.compute.files import read_npz
from lstm_exp.compute.tasks import TaskData
from lstm_exp.config import names
from lstm_exp.config.controls_validate import MAX_CLASSES
from lstm_exp.config.memory import TF_BASE_BYTES
from lstm_exp.config.specs import ModelSpec, RunSpec, TaskSpec
from lstm_exp.config.task_kinds import MAX_TIMESTEPS
from lstm_exp.config.task_memory import TrainingSizes, training_peak_bytes
from lstm_exp.errors import ConfigError

KEY = "task.path"
ALLOWED = ("an .npz with x (N, T, F) and y: float (N,), (N, D) or (N, T, D), or integer classes (N,) "
           "or (N, T); optional x_val and y_val, lengths and lengths_val")
MEMBERS = ("x", "y", "x_val", "y_val", "lengths", "lengths_val")
_SPLIT_STREAM = 6  # NumPy stream id beside tasks' (0-2) and training's (4, 5)


@dataclass(frozen=True)
class DatasetInfo:
    """One split as MLflow records a dataset: its name, context, digest, source and shapes."""

    name: str  # the file's name without .npz
    context: str  # training | validation
    digest: str  # sha256 (first 16 hex digits) of the split's arrays, dtypes and shapes
    source: str  # the file's absolute path
    rows: int
    shapes: dict[str, list[int]]  # member -> shape, of what was trained on
    dtypes: dict[str, str]

    def to_dict(self) -> dict:
        return asdict(self)


def _refuse(path: str, reason: str) -> ConfigError:
    return ConfigError(KEY, path, f"{ALLOWED} ({reason})")


def load_file_task(task: TaskSpec, spec: ModelSpec, seed: int, run: RunSpec) -> TaskData:
    """Reads, checks and splits `task.path` (see the module docstring).

    Args:
        task: the validated `task` section of `task=file`.
        spec: the model, for the memory check with the file's sizes.
        seed: the run's seed: the split without x_val follows from it.
        run: `run.*`, for `run.max_memory_gb`.

    Raises:
        ConfigError: naming `task.path` (or `task.classes`, `task.val_fraction`) and what is wrong.

    Example:
        >>> data = load_file_task(parse(compose("task=file", "task.path=sine.npz")).task, spec, 0, run)
        >>> data.x_train.shape, data.loss, data.per_step
        ((160, 40, 1), 'mse', True)
    """
    path = task.path
    arrays = read_npz(path, KEY, run.memory_budget, ALLOWED)
    unknown = sorted(set(arrays) - set(MEMBERS))
    if unknown:
        raise _refuse(path, f"member {unknown[0]!r} is none of {', '.join(MEMBERS)}")
    for name in ("x", "y"):
        if name not in arrays:
            raise _refuse(path, f"no member {name!r}")
    if ("x_val" in arrays) != ("y_val" in arrays):
        raise _refuse(path, "x_val and y_val come together")
    if "lengths_val" in arrays and not ("x_val" in arrays and "lengths" in arrays):
        raise _refuse(path, "lengths_val comes with x_val and lengths")
    if "x_val" in arrays and ("lengths" in arrays) != ("lengths_val" in arrays):
        raise _refuse(path, "with x_val, lengths and lengths_val come together")
    classes = _check_shapes(arrays, path)
    if classes:
        classes = _check_classes(arrays, path, task.classes)
    x, y, lengths = arrays["x"], arrays["y"], arrays.get("lengths")
    if "x_val" in arrays:
        train = (x, y, lengths)
        val = (arrays["x_val"], arrays["y_val"], arrays.get("lengths_val"))
    else:
        train, val = _split(x, y, lengths, task.val_fraction, seed)
    per_step = _per_step(arrays["y"])
    loss = "crossentropy" if classes else "mse"
    x_train, y_train, len_train = _as_trained(*train, loss)
    x_val, y_val, len_val = _as_trained(*val, loss)
    outputs = classes or y_train.shape[-1]
    data = TaskData(x_train, y_train, x_val, y_val, 0.0, loss, per_step, outputs, len_train, len_val)
    _check_memory(task, spec, run, path, data)
    data.baseline_loss = baseline_loss(loss, y_train, y_val, len_train, len_val, outputs)
    stem = Path(path).name.removesuffix(".npz")
    source = str(Path(path).resolve())
    data.datasets = (_info(stem, names.TRAINING_CONTEXT, source, x_train, y_train, len_train),
                     _info(stem, names.VALIDATION_CONTEXT, source, x_val, y_val, len_val))
    return data


def _per_step(y: np.ndarray) -> bool:
    return y.ndim == 3 or (y.dtype.kind in "iu" and y.ndim == 2)


def _check_shapes(arrays: dict[str, np.ndarray], path: str) -> bool:
    """Dims, and N and T agreeing across members; returns whether y holds classes."""
    x, y = arrays["x"], arrays["y"]
    if x.ndim != 3 or min(x.shape) < 1:
        raise _refuse(path, f"x has shape {x.shape}, not (N, T, F) with N, T, F >= 1")
    rows, steps = x.shape[:2]
    if steps > MAX_TIMESTEPS:
        raise _refuse(path, f"x has T={steps} steps, more than {MAX_TIMESTEPS}")
    classes = y.dtype.kind in "iu"
    if classes and y.ndim not in (1, 2):
        raise _refuse(path, f"integer y (classes) has shape {y.shape}, not (N,) or (N, T)")
    if not classes and (y.ndim not in (1, 2, 3) or min(y.shape) < 1):
        raise _refuse(path, f"y has shape {y.shape}, not (N,), (N, D) or (N, T, D)")
    for suffix in ("", "_val"):
        if "x" + suffix not in arrays:
            continue
        xs, ys = arrays["x" + suffix], arrays["y" + suffix]
        if suffix and (xs.ndim != 3 or xs.shape[1:] != x.shape[1:] or xs.shape[0] < 1):
            raise _refuse(path, f"x_val has shape {xs.shape}, not (N_val, T, F) = (N_val, {steps}, "
                                f"{x.shape[2]}) like x")
        if suffix and (ys.shape[1:] != y.shape[1:] or (ys.dtype.kind in "iu") != classes):
            raise _refuse(path, f"y_val has shape {ys.shape} of {ys.dtype}, unlike y's {y.shape} of "
                                f"{y.dtype}")
        if ys.shape[0] != xs.shape[0]:
            raise _refuse(path, f"y{suffix} has N={ys.shape[0]} rows, x{suffix} has {xs.shape[0]}")
        if _per_step(ys) and ys.shape[1] != xs.shape[1]:
            raise _refuse(path, f"y{suffix} has T={ys.shape[1]} steps, x{suffix} has {xs.shape[1]}")
        if "lengths" + suffix in arrays:
            _check_lengths(arrays["lengths" + suffix], "lengths" + suffix, xs.shape[0], steps, path)
    return classes


def _check_lengths(lengths: np.ndarray, name: str, rows: int, steps: int, path: str) -> None:
    if lengths.dtype.kind not in "iu" or lengths.shape != (rows,):
        raise _refuse(path, f"{name} has shape {lengths.shape} of {lengths.dtype}, not ({rows},) integers")
    if lengths.size and not (lengths.min() >= 1 and lengths.max() <= steps):
        raise _refuse(path, f"{name} holds {int(lengths.min())}..{int(lengths.max())}, not 1..T={steps}")


def _check_classes(arrays: dict[str, np.ndarray], path: str, classes: int | None) -> int:
    """The number of classes: `task.classes`, or the largest label + 1 (at least 2)."""
    labels = [arrays[n] for n in ("y", "y_val") if n in arrays]
    low = min(int(a.min()) for a in labels)
    high = max(int(a.max()) for a in labels)
    if low < 0:
        raise _refuse(path, f"y holds class {low}: classes are 0, 1, ... (no negative labels)")
    if classes is not None and high >= classes:
        raise ConfigError("task.classes", classes, f"more than the largest class in {path}, {high}")
    if classes is None and high >= MAX_CLASSES:
        raise _refuse(path, f"y holds class {high}: at most {MAX_CLASSES} classes")
    return classes or max(2, high + 1)


def _split(x, y, lengths, fraction: float, seed: int):
    rows = len(x)
    held = round(rows * fraction)
    if not 1 <= held <= rows - 1:
        raise ConfigError("task.val_fraction", fraction,
                          f"a share of the N={rows} sequences that leaves both splits at least one")
    order = np.random.default_rng([seed, _SPLIT_STREAM]).permutation(rows)
    val, train = order[:held], order[held:]

    def take(rows_):
        return x[rows_], y[rows_], None if lengths is None else lengths[rows_]

    return take(train), take(val)


def _as_trained(x, y, lengths, loss: str):
    """float32 x; y as float32 (N, D) / (N, T, D) for MSE or int32 for classes; int32 lengths."""
    if loss == "crossentropy":
        y = y.astype(np.int32)
    else:
        y = (y[:, None] if y.ndim == 1 else y).astype(np.float32)
    return x.astype(np.float32), y, None if lengths is None else lengths.astype(np.int32)


def _valid(values: np.ndarray, lengths: np.ndarray | None) -> np.ndarray:
    """The per-step values at valid steps only ((N, T, ...) -> (M, ...)); others unchanged."""
    if not _steps_axis(values):
        return values
    if lengths is None:
        return values.reshape(-1, *values.shape[2:])
    mask = np.arange(values.shape[1])[None, :] < lengths[:, None]
    return values[mask]


def _steps_axis(values: np.ndarray) -> bool:
    return values.ndim == 3 or (values.dtype.kind in "iu" and values.ndim == 2)


def baseline_loss(loss: str, y_train, y_val, len_train, len_val, outputs: int) -> float:
    """The trivial predictor's loss on the validation split (see the module docstring)."""
    train, val = _valid(y_train, len_train), _valid(y_val, len_val)
    if loss == "mse":
        mean = train.astype(np.float64).mean(axis=0)  # (D,)
        return float(np.mean((val.astype(np.float64) - mean) ** 2))
    counts = np.bincount(train.ravel(), minlength=outputs).astype(np.float64)
    frequencies = (counts + 1.0) / (counts.sum() + outputs)
    return float(-np.mean(np.log(frequencies[val.ravel()])))


def file_training_bytes(data: TaskData, spec: ModelSpec, batch_size: int) -> int:
    """Bytes training on the file's splits holds at its peak, TensorFlow's base aside."""
    steps, features = data.x_train.shape[1:]
    target_values = int(np.prod(data.y_train.shape[1:], dtype=np.int64))
    # draw_bytes 0: the splits are read, not drawn (the reader checked its own peak against the budget)
    sizes = TrainingSizes(len(data.x_train), len(data.x_val), steps, features, target_values, data.outputs,
                          data.per_step, batch_size, draw_bytes=0)
    return training_peak_bytes(sizes, spec) - TF_BASE_BYTES


def _check_memory(task, spec, run, path, data: TaskData) -> None:
    needed = TF_BASE_BYTES + file_training_bytes(data, spec, task.batch_size)
    if needed > run.memory_budget:
        raise _refuse(path, f"training on it with task.batch_size={task.batch_size} and model.units="
                            f"{list(spec.units)} needs about {needed / 2**30:.1f} GB, more than "
                            f"run.max_memory_gb={run.max_memory_gb:g}")


def _info(name: str, context: str, source: str, x, y, lengths) -> DatasetInfo:
    members = {"x": x, "y": y} if lengths is None else {"x": x, "y": y, "lengths": lengths}
    digest = hashlib.sha256()
    for member, array in members.items():
        digest.update(f"{member}:{array.dtype.str}:{array.shape};".encode())
        digest.update(np.ascontiguousarray(array).tobytes())
    return DatasetInfo(name, context, digest.hexdigest()[:16], source, len(x),
                       {m: list(a.shape) for m, a in members.items()},
                       {m: str(a.dtype) for m, a in members.items()})
