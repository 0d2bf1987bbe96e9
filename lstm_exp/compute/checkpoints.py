"""A training checkpoint: the file format, its atomic writer and its checked reader.

A checkpoint is everything the epochs after it depend on, as named arrays and a small JSON of scalars,
in one `.npz` (no pickles):

    stack/<weight name>      the stack's weights under `initial_weights`' names
    readout/kernel, /bias    the Dense readout
    optimizer/<k>/<name>     the optimizer's variables in its own order (Adam: iteration, learning
                             rate, then a momentum and a velocity per weight)
    __scalars__              uint8 bytes of a JSON object: `format`, `epochs_done`, the loss and epoch
                             time histories so far, and `digest`, the sha256 of every other array

Random state: the batch order of epoch e is a permutation drawn from (seed, e), the data and the
readout's start from the seed; no generator carries state from one epoch to the next, so `epochs_done`
is all of it. Controls added later (early stopping's best value and weights, a schedule's step) add
arrays under their own prefix and keys to the scalars; the format number changes only when a reader
could misread an older file.

A checkpoint is written to a temporary file beside its destination and renamed into place, so a kill
mid-write leaves no file under the final name; one truncated or altered later (a copy cut short) fails
its digest and is refused with one line.

    save_checkpoint(path, checkpoint)
    read_checkpoint(path, key="task.resume_from") -> Checkpoint   # ConfigError naming key and file
"""

import hashlib
import json
import os
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from lstm_exp.errors import ConfigError

FORMAT = 1
_SCALARS = "__scalars__"


@dataclass
class Checkpoint:
    """The state of a training after `epochs_done` epochs.

    Args:
        epochs_done: epochs trained so far; training goes on with epoch `epochs_done` (from 0).
        arrays: named arrays (see the module docstring for the prefixes).
        scalars: JSON-able values: `train_loss`, `val_loss`, `epoch_s` lists with one entry per epoch done.
    """

    epochs_done: int
    arrays: dict[str, np.ndarray]
    scalars: dict = field(default_factory=dict)

    @property
    def val_loss(self) -> float:
        """The validation loss after the last epoch done."""
        return float(self.scalars["val_loss"][-1])


def _digest(arrays: dict[str, np.ndarray]) -> str:
    digest = hashlib.sha256()
    for name in sorted(arrays):
        array = np.ascontiguousarray(arrays[name])
        digest.update(f"{name}\0{array.dtype.str}\0{array.shape}\0".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


def save_checkpoint(path: Path, checkpoint: Checkpoint) -> Path:
    """Writes `checkpoint` to `path` atomically (a temporary file, flushed, then renamed); returns path."""
    path = Path(path)
    scalars = {**checkpoint.scalars, "format": FORMAT, "epochs_done": checkpoint.epochs_done,
               "digest": _digest(checkpoint.arrays)}
    payload = {**checkpoint.arrays, _SCALARS: np.frombuffer(json.dumps(scalars).encode(), np.uint8)}
    partial = path.with_name(f".{path.name}.partial")
    with open(partial, "wb") as handle:
        np.savez(handle, **payload)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(partial, path)  # the final name appears only once the file is whole
    return path


def read_checkpoint(path: Path, key: str, shown: str | None = None) -> Checkpoint:
    """Reads and checks a checkpoint written by `save_checkpoint`.

    Args:
        path: the `.npz` file.
        key: the config key that led to this file, named in the error.
        shown: what the error calls the file (e.g. the run and artifact it was downloaded from); `path`.

    Raises:
        ConfigError: the file is missing, truncated, altered, or not an lstm_exp checkpoint.
    """
    allowed = "a run whose last checkpoint is complete"

    def refuse(reason: str) -> ConfigError:
        return ConfigError(key, shown or str(path), f"{allowed} ({reason})")

    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {name: archive[name] for name in archive.files}
    except FileNotFoundError:
        raise refuse("the checkpoint file is missing") from None
    except (zipfile.BadZipFile, EOFError, OSError, ValueError) as error:
        why = " ".join(str(error).split())[:120]
        raise refuse(f"the checkpoint file is truncated or corrupt: {why}") from None
    if _SCALARS not in arrays:
        raise refuse("not an lstm_exp checkpoint: no scalars")
    try:
        scalars = json.loads(arrays.pop(_SCALARS).tobytes().decode())
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise refuse("its scalars are not JSON") from None
    if not isinstance(scalars, dict) or scalars.get("format") != FORMAT:
        raise refuse(f"checkpoint format {scalars.get('format') if isinstance(scalars, dict) else '?'}, "
                     f"this lstm_exp reads format {FORMAT}")
    if scalars.get("digest") != _digest(arrays):
        raise refuse("its arrays do not match the digest written with them: the file was altered")
    return Checkpoint(int(scalars["epochs_done"]), arrays, scalars)
