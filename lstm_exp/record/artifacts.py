"""What one run keeps, written to a plain directory and computed as plain numbers (no MLflow here)."""

import json
from pathlib import Path

import numpy as np

from lstm_exp.config import names
from lstm_exp.config.specs import Experiment
from lstm_exp.record.metrics import RunMetrics

PCA_FILE = "pca_trajectories.npz"
MODEL_FILE = "model.keras"  # with tracking.log_model: the stack, logged as the run's MLflow model


def shapes_document(result) -> dict:
    """Expected (from the config) and actual shapes of every array and weight."""
    return {
        "expected": {n: list(s) for n, s in result.expected_shapes.items()},
        "actual": {n: list(a.shape) for n, a in result.arrays.items()},
        "weights": {n: list(w.shape) for n, w in result.weights.items()},
        "engine": result.engine_label,
    }




def description_tags(experiment: Experiment, result) -> dict[str, str]:
    """The run page's description (`mlflow.note.content`): what ran on what, and how well it checked."""
    spec = result.spec
    shape = tuple(result.arrays["output"].shape)
    trained = ""
    if result.training:
        t = result.training
        trained = (f" Trained on task **{experiment.task.name}** for {len(t.val_loss)} epochs: val_loss "
                   f"{t.val_loss[-1]:.4g} against the baseline's {t.baseline_loss:.4g}.")
    note = (f"**{experiment.model_name}**: {spec.cell} {list(spec.units)}"
            f"{', bidirectional' if spec.bidirectional else ''} on input **{experiment.input_name}** "
            f"{tuple(result.arrays['input'].shape)} → output {shape}, engine `{result.engine_label}`, "
            f"seed {experiment.seed}. Reference check: max |engine − NumPy float64| = "
            f"{result.reference_max_abs_err:.3g}.{trained}")
    return {"mlflow.note.content": note, "lstm_exp.engine": result.engine_label}


def write_run_directory(out: Path, config_yaml: str, result, summary: str, pca, log_model: bool) -> Path:
    """Writes config.yaml, states.npz, weights.npz (readout.npz after training), shapes.json,
    summary.txt and the PCA trajectories of `pca` (`analyses.layer_pca`; plots: `draw_plots`).

    `config_yaml` is the resolved config. With `log_model` (`tracking.log_model`), also model.keras,
    which `model_log` turns into the run's MLflow model.
    """
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.yaml").write_text(config_yaml)
    np.savez(out / "states.npz", **result.arrays)
    np.savez(out / "weights.npz", **result.weights)
    if result.training is not None:  # what the task reads from the states: `lstm_exp.dynamics` needs it
        np.savez(out / names.READOUT_FILE, **result.training.readout)
    (out / "shapes.json").write_text(json.dumps(shapes_document(result), indent=2))
    (out / "summary.txt").write_text(summary)
    # Drawn by the recorder, which has no model spec: the projections travel as an artifact.
    np.savez(out / PCA_FILE, **{names.layer_name(k): v for k, (_, v) in pca.items()})
    if result.training is not None and result.training.datasets:  # task=file: logged as MLflow datasets
        datasets = [info.to_dict() for info in result.training.datasets]
        (out / names.DATASETS_FILE).write_text(json.dumps(datasets, indent=2))
    if log_model:
        from lstm_exp.compute.export_model import save_stack_model

        save_stack_model(result.spec, result.weights, result.arrays["input"].shape[-1], out / MODEL_FILE)
    return out


def draw_plots(folder: Path, metrics: RunMetrics, state_plots: bool = True) -> None:
    """Draws plots/*.png from the folder's states.npz and the run's per-step norms and losses.

    Args:
        state_plots: False: the loss curves alone, not the pictures of the states (h and gate heatmaps,
            norms over time, PCA): a search's pruned trial (README, "Pruning inside the job").
    """
    from lstm_exp.record import plots

    if state_plots:
        with np.load(folder / "states.npz") as archive:
            arrays = {name: archive[name] for name in archive.keys()}
        plots.layer_h_heatmaps(arrays, folder / "plots")
        plots.gate_heatmaps(arrays, folder / "plots")
        plots.norms_over_time(metrics.per_step, folder / "plots")
        if (folder / PCA_FILE).is_file():
            with np.load(folder / PCA_FILE) as archive:
                projections = {names.parse_layer_name(n): archive[n] for n in archive.files}
            plots.pca_trajectories(projections, folder / "plots")
    if names.VAL_LOSS in metrics.per_epoch:
        losses = {n: metrics.per_epoch[n] for n in (names.TRAIN_LOSS, names.VAL_LOSS)}
        plots.loss_curves(losses, metrics.final[names.BASELINE_LOSS], folder / "plots")
