"""Pictures of a run (h over time per layer, gate activations, state norms per step, PCA, losses) and
of several runs side by side (their h norms over time, for `compare --plot`)."""

import matplotlib

matplotlib.use("Agg")  # files only; never needs a display

import os  # noqa: E402
from pathlib import Path  # noqa: E402

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from lstm_exp.config import names  # noqa: E402
from lstm_exp.config.names import GATES  # noqa: E402
from lstm_exp.errors import ConfigError  # noqa: E402

MAX_ROWS = 4  # batch rows drawn per figure; more would be unreadable


def _heatmap(ax, values: np.ndarray, title: str, vmin=-1.0, vmax=1.0):
    # values (T, H): time runs left to right, one line per unit.
    image = ax.imshow(values.T, aspect="auto", cmap="RdBu_r", vmin=vmin, vmax=vmax,
                      interpolation="nearest")
    ax.set(title=title, xlabel="time step t", ylabel="unit")
    for axis in (ax.xaxis, ax.yaxis):  # steps and units are whole numbers
        axis.set_major_locator(MaxNLocator(integer=True))
    return image


def layer_h_heatmaps(arrays: dict[str, np.ndarray], out: Path) -> list[Path]:
    """One figure per layer: its output h (units x time) for the first batch rows."""
    paths = []
    for k in range(names.layer_count(arrays)):
        seq = arrays[names.array_name(k, names.SEQUENCE)]  # (B, T, H)
        rows = min(MAX_ROWS, seq.shape[0])
        fig, axes = plt.subplots(1, rows, figsize=(3.2 * rows + 1, 3.2), squeeze=False)
        fig.subplots_adjust(wspace=0.3, bottom=0.17, top=0.88, left=0.08, right=0.86)
        for b in range(rows):
            image = _heatmap(axes[0, b], seq[b], f"layer {k} h, row {b}")
        fig.colorbar(image, cax=fig.add_axes((0.89, 0.17, 0.015, 0.71)))
        paths.append(_save(fig, out / f"{names.layer_name(k)}_h.png"))
    return paths


def gate_heatmaps(arrays: dict[str, np.ndarray], out: Path) -> list[Path]:
    """One figure per LSTM layer and direction: gates i, f, g, o over time for batch row 0."""
    paths = []
    for name in sorted(arrays):
        parsed = names.parse_array_name(name)
        if parsed is None or parsed.gate != GATES[0]:
            continue  # one figure per layer and direction: at its first gate
        k, d = parsed.layer, parsed.direction
        prefix = names.layer_prefix(k, d)  # layer_{k}/ or layer_{k}/{d}/
        fig, axes = plt.subplots(1, 4, figsize=(13, 3.2))
        fig.subplots_adjust(wspace=0.3, bottom=0.17, top=0.8, left=0.05, right=0.9)
        for ax, gate in zip(axes, GATES, strict=True):
            # One scale for all four (g is tanh, in [-1, 1]; i, f, o are sigmoids, in [0, 1]), so one
            # colour bar serves the figure: per-panel bars cost half its drawing time.
            image = _heatmap(ax, arrays[names.gate_name(k, gate, d)][0], f"{prefix}{gate}")
        fig.colorbar(image, cax=fig.add_axes((0.92, 0.17, 0.01, 0.63)))
        fig.suptitle(f"{prefix.rstrip('/')} gate activations, batch row 0")
        paths.append(_save(fig, out / f"{names.flat_layer_name(k, d)}_gates.png"))
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
        paths.append(_save(fig, out / f"{names.layer_name(k)}_pca.png"))
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


def plot_h_norms(client, runs: list, path: Path) -> Path:
    """Saves one panel per layer with every run's `layer_{k}.h_norm` over the time steps
    (`python -m lstm_exp.compare --plot`).

    Raises:
        ConfigError: on `--plot`, when no run logged an h norm or `path` cannot be written.
    """
    panels: dict[int, list] = {}  # layer k -> [(run index, steps, values)]
    for i, run in enumerate(runs):
        for name in run.data.metrics:
            if (parsed := names.parse_layer_metric(name)) and parsed[1] == names.H_NORM:
                history = sorted(client.get_metric_history(run.info.run_id, name), key=lambda m: m.step)
                panels.setdefault(parsed[0], []).append(
                    (i, [m.step for m in history], [m.value for m in history]))
    if not panels:
        raise ConfigError("--plot", str(path), "a figure of runs that logged layer_{k}.h_norm; none did")
    shown = sorted({i for lines in panels.values() for i, _, _ in lines})
    fig, axes = plt.subplots(1, len(panels), figsize=(max(4.5 * len(panels), 7), 3.4 + 0.2 * len(shown)),
                             squeeze=False, layout="constrained")
    for ax, k in zip(axes[0], sorted(panels), strict=True):
        for i, steps, values in panels[k]:  # a run keeps its colour in every panel
            ax.plot(steps, values, marker="o", color=f"C{i % 10}")
        ax.set(title=names.layer_metric(k, names.H_NORM), xlabel="time step t", ylabel="||h_t||")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    labels = [f"{runs[i].info.run_id[:8]} {(runs[i].info.run_name or '')[:70]}" for i in shown]
    handles = [plt.Line2D([], [], marker="o", color=f"C{i % 10}") for i in shown]
    fig.legend(handles, labels, loc="outside lower center", fontsize="small", frameon=False)
    # Written beside `path` and renamed, as `weights export` writes: a full disk or a read-only folder
    # leaves no empty or half-written figure, and an earlier one at `path` stays whole.
    partial = path.with_name(path.name + ".partial")
    try:
        fig.savefig(partial, dpi=100, format=path.suffix[1:].lower())
        os.replace(partial, path)
    except OSError as error:
        partial.unlink(missing_ok=True)
        allowed = f"a file that can be written here ({error.strerror})"
        raise ConfigError("--plot", str(path), allowed) from None
    finally:
        plt.close(fig)
    return path


def _save(fig, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    # Margins are set by hand: a layout engine or bbox_inches="tight" doubles the drawing time.
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path
