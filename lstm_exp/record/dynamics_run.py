"""What the fixed-point analysis keeps, and the run that `python -m lstm_exp.dynamics` records it in.

The analysed run is never written to: a run rewritten after it ended would no longer be what ran.
The results go to a new run in the same experiment, tagged `lstm_exp.dynamics_of=<source run id>`,
which ends FINISHED once everything is logged, FAILED with the reason if logging fails, KILLED on
Ctrl-C or SIGTERM: none is left RUNNING.

`fixed_points.npz` (P points, D = 2 * sum(units), O readout outputs):

    points (P, D)        the stack's state [h_0, c_0, h_1, c_1, ...]; also as layer_{k}/h, layer_{k}/c
    q (P,)               ½‖F(x) − x‖²
    eigenvalues (P, D)   of dF/dx, complex, by decreasing modulus;  jacobians (P, D, D)
    stable (P,)          all |λ| < 1;  unstable_modes (P,): how many |λ| ≥ 1
    input (F,)           the constant input;  readout (P, O): the trained readout there (trained runs)
    n_inits, n_not_converged, n_outliers    what the search tried (0-d)
"""

import time
from pathlib import Path

import numpy as np

from lstm_exp.compute.fixed_points import (
    FixedPointOptions,
    find_fixed_points,
    pca_projection,
    readout_at,
    trajectory_states,
)
from lstm_exp.compute.lstm_map import state_slices
from lstm_exp.config import names
from lstm_exp.record.fixed_point_plots import fixed_points_figure
from lstm_exp.record.run_end import end_if_running
from lstm_exp.record.store import TAG_PREFIX
from lstm_exp.record.store_locks import retry_locked


def analyse_fixed_points(spec, weights: dict[str, np.ndarray], states: dict[str, np.ndarray],
                         readout: dict[str, np.ndarray] | None, u: np.ndarray, options: FixedPointOptions,
                         folder: Path):
    """Finds the fixed points from the recorded trajectories `states` (states.npz's arrays) and writes
    fixed_points.npz and the plot into `folder`; returns (FixedPoints, the readout there or None)."""
    trajectories = trajectory_states(spec, states)  # (B, T, D)
    found = find_fixed_points(spec, weights, u, trajectories.reshape(-1, trajectories.shape[-1]), options)
    values = readout_at(found.points, spec, readout) if readout else None
    pca = pca_projection(trajectories, found.points)
    write_fixed_points(folder, found, state_slices(spec), u, values, pca)
    return found, values


def analyse_result(analysis, result, folder: Path) -> tuple[dict[str, float], str]:
    """`analysis.fixed_points=true`: the fixed points of a run's own result, written into its folder.

    Args:
        analysis: the `AnalysisSpec` (the constant input, None for zeros).
        result: the runner's `Result`: its states, weights and (after training) readout.

    Returns:
        The fp.* metrics and the report's lines.
    """
    features = result.arrays[names.INPUT].shape[-1]
    u = np.zeros(features) if analysis.input is None else np.asarray(analysis.input, np.float64)
    readout = result.training.readout if result.training is not None else None
    found, values = analyse_fixed_points(result.spec, result.weights, result.arrays, readout, u,
                                         FixedPointOptions(), folder)
    return fixed_point_metrics(found), fixed_points_report(found, values, "this run")


def fixed_points_report(found, readout: np.ndarray | None, source: str) -> str:
    """Counts, the largest q, and the readout's signs at each point (`source`: "run <id>", say)."""
    lines = [f"fixed points of {source}: {int(found.stable.sum())} stable, {int((~found.stable).sum())} "
             f"unstable (max q {found.max_q:.3g}); {found.n_not_converged} of {found.n_inits} initial states "
             f"did not converge, {found.n_outliers} outliers dropped"]
    if readout is not None:
        for row, modes in zip(readout, found.unstable_modes, strict=True):
            signs = "".join("+" if value > 0 else "-" for value in row)
            lines.append(f"  readout signs {signs}  {'stable' if modes == 0 else f'{modes} unstable modes'}")
    return "\n".join(lines)


def fixed_point_metrics(found) -> dict[str, float]:
    """fp.n_stable, fp.n_saddle (points with an unstable mode), fp.max_q, fp.n_not_converged."""
    return {names.FP_N_STABLE: float(found.stable.sum()), names.FP_N_SADDLE: float((~found.stable).sum()),
            names.FP_MAX_Q: found.max_q, names.FP_N_NOT_CONVERGED: float(found.n_not_converged)}


def write_fixed_points(folder: Path, found, layer_slices: dict[str, slice], u: np.ndarray,
                       readout: np.ndarray | None, pca: tuple[np.ndarray, np.ndarray]) -> None:
    """Writes `fixed_points.npz` and `plots/fixed_points.png` into `folder`.

    Args:
        found: `compute.fixed_points.FixedPoints`.
        layer_slices: `lstm_map.state_slices`: where each layer's h and c sit in a point.
        u: the constant input.
        readout: (P, O) the trained readout at each point, or None (no readout recorded).
        pca: the trajectories (B, T, 2) and the points (P, 2) on the states' first two components.
    """
    arrays = {"points": found.points, "q": found.q, "eigenvalues": found.eigenvalues,
              "jacobians": found.jacobians, "stable": found.stable, "unstable_modes": found.unstable_modes,
              "input": np.asarray(u, np.float64), "n_inits": np.asarray(found.n_inits),
              "n_not_converged": np.asarray(found.n_not_converged),
              "n_outliers": np.asarray(found.n_outliers)}
    arrays.update({name: found.points[:, where] for name, where in layer_slices.items()})
    if readout is not None:
        arrays["readout"] = readout
    folder.mkdir(parents=True, exist_ok=True)
    np.savez(folder / names.FIXED_POINTS_FILE, **arrays)
    fixed_points_figure(pca[0], pca[1], found.eigenvalues, found.stable, folder / names.FIXED_POINTS_PLOT)


def record_dynamics(uri: str, source, folder: Path, metrics: dict[str, float], params: dict[str, str],
                    note: str) -> str:
    """Logs `folder` as a new run linked to `source` (an MLflow Run); returns the new run's id.

    Raises:
        whatever stopped it, after ending the new run FAILED (an error) or KILLED (a signal).
    """
    from mlflow.entities import Metric, Param, RunTag
    from mlflow.tracking import MlflowClient

    from lstm_exp.record.run_record import Terminated

    client = MlflowClient(tracking_uri=uri)
    source_name = source.data.tags.get("mlflow.runName", source.info.run_id)
    tags = {names.DYNAMICS_OF_TAG: source.info.run_id, "mlflow.runName": f"dynamics of {source_name}",
            "mlflow.note.content": note}
    run_id = retry_locked(lambda: client.create_run(source.info.experiment_id, tags=tags)).info.run_id
    try:
        now = int(time.time() * 1000)
        metric_list = [Metric(name, float(value), now, 0) for name, value in metrics.items()]
        param_list = [Param(key, value) for key, value in params.items()]
        retry_locked(lambda: client.log_batch(run_id, metrics=metric_list, params=param_list,
                                              tags=[RunTag(TAG_PREFIX + "analysis", "fixed_points")]))
        retry_locked(lambda: client.log_artifacts(run_id, str(folder)))
    except (KeyboardInterrupt, Terminated):
        end_if_running(client, uri, run_id, "KILLED", "stopped by a signal while logging")
        raise
    except BaseException as error:
        end_if_running(client, uri, run_id, "FAILED", f"{type(error).__name__}: {error}")
        raise
    end_if_running(client, uri, run_id, "FINISHED")
    return run_id
