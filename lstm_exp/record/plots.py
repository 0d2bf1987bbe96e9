"""Pictures of a run: h over time per layer, gate activations, state norms per step."""

import matplotlib

matplotlib.use("Agg")  # files only; never needs a display

from pathlib import Path  # noqa: E402

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

MAX_ROWS = 4  # batch rows drawn per figure; more would be unreadable


def _heatmap(ax, values: np.ndarray, title: str, vmin=-1.0, vmax=1.0):
    # values (T, H): time runs left to right, one line per unit.
    image = ax.imshow(values.T, aspect="auto", cmap="RdBu_r", vmin=vmin, vmax=vmax,
                      interpolation="nearest")
    ax.set(title=title, xlabel="time step t", ylabel="unit")
    for axis in (ax.xaxis, ax.yaxis):  # steps and units are whole numbers
        axis.set_major_locator(MaxNLocator(integer=True))
    return image


def layer_h_heatmaps(arrays: dict[str, np.ndarray], layers: int, out: Path) -> list[Path]:
    """One figure per layer: its output h (units x time) for the first batch rows."""
    paths = []
    for k in range(layers):
        seq = arrays[f"layer_{k}/sequence"]  # (B, T, H)
        rows = min(MAX_ROWS, seq.shape[0])
        fig, axes = plt.subplots(1, rows, figsize=(3.2 * rows + 1, 3.2), squeeze=False)
        fig.subplots_adjust(wspace=0.3, bottom=0.17, top=0.88, left=0.08, right=0.86)
        for b in range(rows):
            image = _heatmap(axes[0, b], seq[b], f"layer {k} h, row {b}")
        fig.colorbar(image, cax=fig.add_axes((0.89, 0.17, 0.015, 0.71)))
        paths.append(_save(fig, out / f"layer_{k}_h.png"))
    return paths


def gate_heatmaps(arrays: dict[str, np.ndarray], out: Path) -> list[Path]:
    """One figure per LSTM layer and direction: gates i, f, g, o over time for batch row 0."""
    paths = []
    for name in sorted(n for n in arrays if n.endswith("/gates/i")):
        prefix = name[: -len("gates/i")]
        fig, axes = plt.subplots(1, 4, figsize=(13, 3.2))
        fig.subplots_adjust(wspace=0.3, bottom=0.17, top=0.8, left=0.05, right=0.9)
        for ax, gate in zip(axes, "ifgo", strict=True):
            # One scale for all four (g is tanh, in [-1, 1]; i, f, o are sigmoids, in [0, 1]), so one
            # colour bar serves the figure: per-panel bars cost half its drawing time.
            image = _heatmap(ax, arrays[f"{prefix}gates/{gate}"][0], f"{prefix}{gate}")
        fig.colorbar(image, cax=fig.add_axes((0.92, 0.17, 0.01, 0.63)))
        fig.suptitle(f"{prefix.rstrip('/')} gate activations, batch row 0")
        paths.append(_save(fig, out / f"{prefix.rstrip('/').replace('/', '_')}_gates.png"))
    return paths


def norms_over_time(norms: dict[str, list[float]], out: Path) -> Path:
    """Per-step h norm of every layer, as in the MLflow chart, in one PNG."""
    fig, ax = plt.subplots(figsize=(6, 3.5))
    fig.subplots_adjust(bottom=0.15, left=0.12)
    for name, values in norms.items():
        ax.plot(range(len(values)), values, marker="o", label=name)
    ax.set(xlabel="time step t", ylabel="‖h_t‖ over the batch", title="state norms over time")
    ax.legend()
    return _save(fig, out / "h_norm_over_time.png")


def pca_trajectories(projections: dict[int, np.ndarray], out: Path) -> list[Path]:
    """One figure per layer: each batch row's hidden state over time in its first two principal axes."""
    paths = []
    for k, points in sorted(projections.items()):  # (B, T, 2), NaN past a row's length
        fig, ax = plt.subplots(figsize=(4.6, 4))
        fig.subplots_adjust(bottom=0.14, left=0.15)
        for b in range(min(points.shape[0], 10)):
            ax.plot(points[b, :, 0], points[b, :, 1], marker=".", linewidth=1, label=f"row {b}")
            ax.plot(points[b, :1, 0], points[b, :1, 1], marker="o", color="black", markersize=3)
        ax.set(title=f"layer {k} h, PCA (dot: t=0)", xlabel="PC 1", ylabel="PC 2")
        if points.shape[0] <= 10:
            ax.legend(fontsize="small")
        paths.append(_save(fig, out / f"layer_{k}_pca.png"))
    return paths


def loss_curves(losses: dict[str, list[float]], baseline: float, out: Path) -> Path:
    """Training and validation loss per epoch, with the task's trivial predictor as a line."""
    fig, ax = plt.subplots(figsize=(6, 3.5))
    fig.subplots_adjust(bottom=0.15, left=0.12)
    for name, values in losses.items():
        ax.plot(range(len(values)), values, marker="o", label=name)
    ax.axhline(baseline, color="grey", linestyle="--", label="baseline")
    ax.set(xlabel="epoch", ylabel="loss", title="training")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.legend()
    return _save(fig, out / "loss.png")


def _save(fig, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    # Margins are set by hand: a layout engine or bbox_inches="tight" doubles the drawing time.
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path
