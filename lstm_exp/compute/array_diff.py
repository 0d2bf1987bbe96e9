"""How far apart two arrays are, for rerun and compare (bit-identical, or the largest difference)."""

from pathlib import Path

import numpy as np

from lstm_exp.compute.files import DEFAULT_BUDGET, read_npz


def read_arrays(path: Path, key: str = "states.npz") -> dict[str, np.ndarray]:
    """Every array of a run's .npz, read as `files.read_npz` reads (NaN kept: a run may diverge)."""
    return read_npz(path, key, DEFAULT_BUDGET, "a readable .npz of a run's arrays", values=False)


def difference(a: np.ndarray, b: np.ndarray) -> str:
    """'identical' (bit for bit), 'shape differs', or the largest absolute difference."""
    if a.shape != b.shape:
        return "shape differs"
    if a.dtype == b.dtype and a.tobytes() == b.tobytes():
        return "identical"
    largest = np.max(np.abs(a.astype(np.float64) - b.astype(np.float64)), initial=0.0)
    return f"max |diff| = {largest:.3g}"
