"""The fixed points' picture: where they sit among the recorded trajectories, and their spectra.

Left: the trajectories of the stack's state projected on their first two principal components (grey
lines), the stable fixed points as filled black dots, the unstable ones as red crosses.
Right: every point's eigenvalues of dF/dx in the complex plane with the unit circle; a stable point's
all lie inside it, an unstable point has one or more outside (red).
"""

import matplotlib

matplotlib.use("Agg")  # files only; never needs a display

from pathlib import Path  # noqa: E402

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def fixed_points_figure(trajectories: np.ndarray, points: np.ndarray, eigenvalues: np.ndarray,
                        stable: np.ndarray, out: Path) -> Path:
    """Draws `out` (a .png).

    Args:
        trajectories: (B, T, 2) the recorded states on the first two principal components.
        points: (P, 2) the fixed points on the same components.
        eigenvalues: (P, D) complex.
        stable: (P,) bool.
    """
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 5))
    for row in trajectories:
        left.plot(row[:, 0], row[:, 1], color="0.75", linewidth=0.8, zorder=1)
    left.scatter(*points[stable].T, s=40, color="black", label=f"stable ({int(stable.sum())})", zorder=3)
    left.scatter(*points[~stable].T, s=40, marker="x", color="tab:red",
                 label=f"unstable ({int((~stable).sum())})", zorder=3)
    left.set(title="fixed points over the trajectories (PCA of the state)", xlabel="PC 1", ylabel="PC 2")
    left.legend(loc="best")
    angle = np.linspace(0, 2 * np.pi, 256)
    right.plot(np.cos(angle), np.sin(angle), color="0.5", linewidth=1)
    for values, is_stable in zip(eigenvalues, stable, strict=True):
        right.scatter(values.real, values.imag, s=10, alpha=0.6,
                      color="black" if is_stable else "tab:red")
    right.set(title="eigenvalues of dF/dx (black: stable points, red: unstable)",
              xlabel="Re λ", ylabel="Im λ", aspect="equal")
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out
