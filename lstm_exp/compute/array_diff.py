"""How far apart two arrays are, for rerun and compare (bit-identical, or the largest difference)."""

from pathlib import Path

import numpy as np


def read_arrays(path: Path) -> dict[str, np.ndarray]:
    """Every array of an .npz file, loaded."""
    with np.load(path) as archive:
        return {name: archive[name] for name in archive.files}


def difference(a: np.ndarray, b: np.ndarray) -> str:
    """'identical' (bit for bit), 'shape differs', or the largest absolute difference."""
    if a.shape != b.shape:
        return "shape differs"
    if a.dtype == b.dtype and a.tobytes() == b.tobytes():
        return "identical"
    largest = np.max(np.abs(a.astype(np.float64) - b.astype(np.float64)), initial=0.0)
    return f"max |diff| = {largest:.3g}"
