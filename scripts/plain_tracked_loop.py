"""The baseline a user would write instead of an lstm_exp sweep: one process, one loop over seeds.

Each iteration builds the tutorial's stack (LSTM 4 -> LSTM 5, Keras 3), runs its (2, 3, 6) batch, and
logs to a SQLite MLflow store what an lstm_exp job logs: the params, per-step h norms and the final
norms, the arrays and weights as .npz, and seven PNG plots (an lstm_exp `model=stacked` run draws
seven: h and gates per layer, the norms over time, and a PCA trajectory per layer).
Usage: .venv/bin/python scripts/plain_tracked_loop.py [RUNS]   (default 1; the store: ./plain.db)
"""

import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import mlflow  # noqa: E402
import numpy as np  # noqa: E402

X = np.array(
    [[[1, 2, 3, 4, 3, 2], [1, 2, 1, 1, 1, 2], [1, 2, 2, 2, 2, 2]],
     [[1, 2, 3, 4, 3, 2], [3, 2, 2, 1, 1, 2], [0, 0, 0, 0, 3, 2]]],
    dtype=np.float32,
)
UNITS = (4, 5)


def figure(path: Path, panels: list[np.ndarray], title: str) -> None:
    fig, axes = plt.subplots(1, len(panels), figsize=(3.2 * len(panels) + 1, 3.2), squeeze=False)
    for ax, values in zip(axes[0], panels, strict=True):
        ax.imshow(values.T, aspect="auto", cmap="RdBu_r", vmin=-1, vmax=1)
    fig.suptitle(title)
    fig.savefig(path, dpi=90)
    plt.close(fig)


def main(runs: int) -> None:
    mlflow.set_tracking_uri(f"sqlite:///{Path.cwd() / 'plain.db'}")
    mlflow.set_experiment("plain")
    for seed in range(runs):
        keras.utils.set_random_seed(seed)
        arrays, seq = {"input": X}, X
        for k, units in enumerate(UNITS):
            layer = keras.layers.LSTM(units, return_sequences=True, return_state=True)
            seq, h, c = (np.asarray(t) for t in layer(seq))
            arrays |= {f"layer_{k}/sequence": seq, f"layer_{k}/h": h, f"layer_{k}/c": c}
            arrays |= {f"layer_{k}/{n}": w for n, w in zip(("kernel", "recurrent", "bias"),
                                                           layer.get_weights(), strict=True)}
        with mlflow.start_run(run_name=f"seed={seed}"), tempfile.TemporaryDirectory() as tmp:
            mlflow.log_params({"seed": seed, "model.units": list(UNITS), "model.cell": "lstm",
                               "input.batch": 2, "input.timesteps": 3, "input.features": 6})
            for k in range(len(UNITS)):
                norms = np.linalg.norm(arrays[f"layer_{k}/sequence"], axis=(0, 2))
                for t, value in enumerate(norms):
                    mlflow.log_metric(f"layer_{k}.h_norm", float(value), step=t)
                mlflow.log_metric(f"layer_{k}.c_norm", float(np.linalg.norm(arrays[f"layer_{k}/c"])))
            folder = Path(tmp)
            np.savez(folder / "states.npz", **arrays)
            for k in range(len(UNITS)):  # h per layer, a four-panel figure and a 2-D trajectory per layer
                figure(folder / f"layer_{k}_h.png", list(arrays[f"layer_{k}/sequence"]), f"layer {k} h")
                figure(folder / f"layer_{k}_gates.png", [arrays[f"layer_{k}/sequence"][0]] * 4, "gates")
                fig, ax = plt.subplots(figsize=(4.6, 4))
                for row in arrays[f"layer_{k}/sequence"]:
                    ax.plot(row[:, 0], row[:, 1], marker=".")
                fig.savefig(folder / f"layer_{k}_trajectory.png", dpi=90)
                plt.close(fig)
            fig, ax = plt.subplots(figsize=(6, 3.5))
            ax.plot(np.linalg.norm(arrays["layer_1/sequence"], axis=(0, 2)), marker="o")
            fig.savefig(folder / "h_norm_over_time.png", dpi=90)
            plt.close(fig)
            mlflow.log_artifacts(str(folder))
        print(f"seed={seed} output {seq.shape}")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 1)
