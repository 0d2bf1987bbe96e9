"""What one run keeps, written to a plain directory and computed as plain numbers (no MLflow here)."""

import json
from pathlib import Path

import numpy as np
from omegaconf import DictConfig, OmegaConf

UNPREFIXED_TIMINGS = ("forward_ms", "train_s")  # names users and scripts compare runs by
MODEL_FILE = "model.keras"  # with tracking.log_model: the stack, logged as the run's MLflow model


def carried_states(sequence: np.ndarray, lengths: np.ndarray | None) -> np.ndarray:
    """h_t per step with a row's state held after its end (outputs there are zero). (B, T, H)."""
    if lengths is None:
        return sequence
    steps = np.minimum(np.arange(sequence.shape[1])[None, :], lengths[:, None] - 1)  # (B, T)
    return np.take_along_axis(sequence, steps[:, :, None], axis=1)


def state_metrics(arrays, layers: int, lengths) -> tuple[dict[str, float], dict[str, list[float]]]:
    """Final norms (`layer_{k}.h_norm`, `layer_{k}.c_norm`) and per-step h norms.

    The per-step series ends on the final state, so a chart's last point is the logged final value.
    """
    final, per_step = {}, {}
    for k in range(layers):
        final[f"layer_{k}.h_norm"] = float(np.linalg.norm(arrays[f"layer_{k}/h"]))
        if f"layer_{k}/c" in arrays:
            final[f"layer_{k}.c_norm"] = float(np.linalg.norm(arrays[f"layer_{k}/c"]))
        held = carried_states(arrays[f"layer_{k}/sequence"], lengths)  # (B, T, H)
        series = [float(np.linalg.norm(held[:, t])) for t in range(held.shape[1])]
        series[-1] = final[f"layer_{k}.h_norm"]
        per_step[f"layer_{k}.h_norm"] = series
    return final, per_step


def shapes_document(result) -> dict:
    """Expected (from the config) and actual shapes of every array and weight."""
    return {
        "expected": {n: list(s) for n, s in result.expected_shapes.items()},
        "actual": {n: list(a.shape) for n, a in result.arrays.items()},
        "weights": {n: list(w.shape) for n, w in result.weights.items()},
        "engine": result.engine_label,
    }


def run_metrics(result, data, pca) -> list[tuple[str, float, int]]:
    """Every metric of a run as (name, value, step): per-step norms, the analyses, losses per epoch.

    Final norms sit on the last step, so they are their series' latest value; the rest on step 0.

    Args:
        data: the run's `InputData` (its lengths and initial state shape the analyses).
        pca: `analyses.layer_pca` of the run (also what `write_run_directory` draws from).
    """
    from lstm_exp.compute.analyses import state_analyses

    lengths = data.lengths
    final, per_step = state_metrics(result.arrays, len(result.spec.units), lengths)
    metrics = [(name, value, t) for name, series in per_step.items() for t, value in enumerate(series)]
    last_step = len(next(iter(per_step.values()))) - 1
    scalars = {n: v for n, v in final.items() if n not in per_step}
    scalars["reference_max_abs_err"] = result.reference_max_abs_err
    # The UI groups metrics by the prefix before "/": timings apart from the states and the check.
    scalars.update({n if n in UNPREFIXED_TIMINGS else f"timing/{n}": v for n, v in result.timings.items()})
    scalars.update(state_analyses(result.arrays, result.spec, lengths, data.initial_state, pca))
    if result.training:
        training = result.training
        for name, series in (("train_loss", training.train_loss), ("val_loss", training.val_loss)):
            metrics += [(name, float(v), epoch) for epoch, v in enumerate(series)]
        scalars["baseline_loss"] = training.baseline_loss
    metrics += [(n, float(v), last_step if n.endswith("_norm") else 0) for n, v in scalars.items()]
    return metrics


def input_name(cfg: DictConfig) -> str:
    """The input's name; with a task, the task's held-out batch is what the states come from."""
    return cfg.input.name if cfg.task.name == "none" else f"held-out batch of task {cfg.task.name}"


def description_tags(cfg: DictConfig, result) -> dict[str, str]:
    """The run page's description (`mlflow.note.content`): what ran on what, and how well it checked."""
    spec = result.spec
    shape = tuple(result.arrays["output"].shape)
    trained = ""
    if result.training:
        t = result.training
        trained = (f" Trained on task **{cfg.task.name}** for {len(t.val_loss)} epochs: val_loss "
                   f"{t.val_loss[-1]:.4g} against the baseline's {t.baseline_loss:.4g}.")
    note = (f"**{cfg.model.name}**: {spec.cell} {list(spec.units)}"
            f"{', bidirectional' if spec.bidirectional else ''} on input **{input_name(cfg)}** "
            f"{tuple(result.arrays['input'].shape)} → output {shape}, engine `{result.engine_label}`, "
            f"seed {cfg.seed}. Reference check: max |engine − NumPy float64| = "
            f"{result.reference_max_abs_err:.3g}.{trained}")
    return {"mlflow.note.content": note, "lstm_exp.engine": result.engine_label}


def write_run_directory(out: Path, cfg: DictConfig, result, summary: str, pca) -> Path:
    """Writes config.yaml, states.npz, weights.npz, shapes.json, summary.txt and the PCA trajectories
    of `pca` (`analyses.layer_pca`; plots: `draw_plots`).

    With `tracking.log_model`, also model.keras, which `model_log` turns into the run's MLflow model.
    """
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.yaml").write_text(OmegaConf.to_yaml(cfg, resolve=True))
    np.savez(out / "states.npz", **result.arrays)
    np.savez(out / "weights.npz", **result.weights)
    (out / "shapes.json").write_text(json.dumps(shapes_document(result), indent=2))
    (out / "summary.txt").write_text(summary)
    # Drawn by the recorder, which has no model spec: the projections travel as an artifact.
    np.savez(out / "pca_trajectories.npz", **{f"layer_{k}": v for k, (_, v) in pca.items()})
    if cfg.tracking.log_model:
        from lstm_exp.compute.export_model import save_stack_model

        save_stack_model(result.spec, result.weights, result.arrays["input"].shape[-1], out / MODEL_FILE)
    return out


def draw_plots(folder: Path, metrics: list) -> None:
    """Draws plots/*.png from the folder's states.npz and the run's per-step norms."""
    from lstm_exp.record import plots

    with np.load(folder / "states.npz") as archive:
        arrays = {name: archive[name] for name in archive.keys()}
    layers = sum(name.endswith("/sequence") for name in arrays)
    by_step: dict[str, dict[int, float]] = {}
    for name, value, step in metrics:
        if name.endswith(".h_norm"):
            by_step.setdefault(name, {})[step] = value
    per_step = {name: [values[t] for t in sorted(values)] for name, values in by_step.items()}
    plots.layer_h_heatmaps(arrays, layers, folder / "plots")
    plots.gate_heatmaps(arrays, folder / "plots")
    plots.norms_over_time(per_step, folder / "plots")
    if (folder / "pca_trajectories.npz").is_file():
        with np.load(folder / "pca_trajectories.npz") as archive:
            projections = {int(n.split("_")[1]): archive[n] for n in archive.files}
        plots.pca_trajectories(projections, folder / "plots")
    losses = {name: [v for n, v, _ in sorted(metrics, key=lambda m: m[2]) if n == name]
              for name in ("train_loss", "val_loss")}
    if losses["val_loss"]:
        baseline = next(v for n, v, _ in metrics if n == "baseline_loss")
        plots.loss_curves(losses, baseline, folder / "plots")
