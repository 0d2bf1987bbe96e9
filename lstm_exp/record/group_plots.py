"""The learning curves of a sweep's groups: per group, val_loss per epoch as a mean line and a band.

The band is the 95 % Student-t interval of the mean at each epoch (`compute/statistics.py`), drawn
where a group has two or more runs with that epoch; a group of one run is its line alone.
"""

import matplotlib

matplotlib.use("Agg")  # files only; never needs a display

from pathlib import Path  # noqa: E402

import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from lstm_exp.compute.statistics import summarize  # noqa: E402

NAME = "learning_curves.png"  # under the parent's plots/


def band(curves: list[list[float]]) -> tuple[list[int], list[float], list[float | None], list[float | None]]:
    """(epochs, mean, low, high) over runs' curves, epoch by epoch; low/high None with one value."""
    epochs, means, lows, highs = [], [], [], []
    for epoch in range(max((len(c) for c in curves), default=0)):
        s = summarize(c[epoch] for c in curves if epoch < len(c))
        if s.n:
            epochs.append(epoch)
            means.append(s.mean)
            lows.append(s.ci_low)
            highs.append(s.ci_high)
    return epochs, means, lows, highs


def learning_curves(groups, metric: str, path: Path) -> Path | None:
    """Draws every group's mean val_loss per epoch with its band; None when no run has a curve.

    Args:
        groups: `record.groups.Group`s; their FINISHED runs' `curve`s are drawn.
        metric: the curve's name, for the axis (val_loss).
    """
    drawn = [(g, band([r.curve for r in g.runs if r.curve])) for g in groups]
    drawn = [(g, b) for g, b in drawn if b[0]]
    if not drawn:
        return None
    fig, ax = plt.subplots(figsize=(7, 4))
    fig.subplots_adjust(bottom=0.13, left=0.11, right=0.97, top=0.9)
    for i, (group, (epochs, means, lows, highs)) in enumerate(drawn):
        color = f"C{i % 10}"
        ax.plot(epochs, means, marker="o", color=color, label=f"{group.label} (n = {len(group.runs)})")
        shown = [(e, lo, hi) for e, lo, hi in zip(epochs, lows, highs, strict=True) if lo is not None]
        if shown:
            ax.fill_between([e for e, _, _ in shown], [lo for _, lo, _ in shown], [hi for _, _, hi in shown],
                            color=color, alpha=0.2, linewidth=0)
    ax.set(xlabel="epoch", ylabel=metric, title=f"{metric} per epoch: mean and 95 % interval per group")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.legend(fontsize="small")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path
