"""What a search trial's run holds by its state: a PRUNED trial's run keeps its arrays, weights,
analyses, reference check and loss curves, and leaves out the pictures of its states, which a
COMPLETE trial's run has (README, "Pruning inside the job").

A real search in the launch process (Hydra's basic launcher), tiny `adding` trainings: two trials
that learn (as many as the median pruner waits for), then one at learning rate 1e-7 that the median
pruner stops at epoch 2.
"""

import math

import numpy as np
import pytest
from conftest import run_cli
from mlflow.tracking import MlflowClient

from lstm_exp.config import names
from lstm_exp.jobs.study import PRUNER_STARTUP

TINY = ("task=adding", "task.epochs=3", "task.train_size=64", "task.val_size=32", "model.units=[4]")
STUDY = ("hydra.sweeper.study_name=pruned-runs", "hydra.sweeper.pruner=median", "seed=choice(0)")
STATE_PLOTS = {"plots/layer_0_h.png", "plots/layer_0_gates.png", "plots/h_norm_over_time.png",
               "plots/layer_0_pca.png"}
DATA_FILES = {"config.yaml", "states.npz", "weights.npz", "readout.npz", "shapes.json", "summary.txt",
              "pca_trajectories.npz"}


def _search(tmp_path, *overrides):
    proc = run_cli("-m", "hydra/sweeper=search", *TINY, *STUDY, *overrides,
                   f"hydra.sweep.dir={tmp_path / 'sweep'}", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def _files(client, run_id, path=None) -> set[str]:
    """The run's artifact files, but its training checkpoints (`checkpoints/`)."""
    found = set()
    for item in client.list_artifacts(run_id, path):
        if item.path != "checkpoints":
            found |= _files(client, run_id, item.path) if item.is_dir else {item.path}
    return found


@pytest.mark.slow
def test_a_pruned_trial_keeps_its_data_and_loss_curves_not_its_state_pictures(tmp_path):
    _search(tmp_path, f"hydra.sweeper.n_trials={PRUNER_STARTUP}", "task.learning_rate=0.05")
    stuck = _search(tmp_path, f"hydra.sweeper.n_trials={PRUNER_STARTUP + 1}", "task.learning_rate=1e-7")
    assert "PRUNED at epoch 2" in stuck.stdout
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("lstm_exp").experiment_id
    runs = [r for r in client.search_runs([experiment]) if "lstm_exp.trial" in r.data.tags]
    by_state = {}
    for run in runs:
        by_state.setdefault(run.data.tags["lstm_exp.trial_state"], []).append(run)
    assert sorted((s, len(r)) for s, r in by_state.items()) == [("COMPLETE", PRUNER_STARTUP), ("PRUNED", 1)]
    pruned, complete = by_state["PRUNED"][0], by_state["COMPLETE"][0]

    complete_files, pruned_files = (_files(client, r.info.run_id) for r in (complete, pruned))
    assert complete_files == DATA_FILES | STATE_PLOTS | {"plots/loss.png"}
    assert pruned_files == DATA_FILES | {"plots/loss.png"}
    # The same metrics (analyses, norms, losses, reference check) as a completed trial's.
    assert set(pruned.data.metrics) == set(complete.data.metrics)
    assert pruned.info.status == "FINISHED"
    assert pruned.data.metrics[names.REFERENCE_ERR] < 1e-5  # its arrays were checked against NumPy float64

    # The arrays are the pruned stack's: its final h norm, recomputed here from states.npz.
    local = client.download_artifacts(pruned.info.run_id, "states.npz", str(tmp_path))
    with np.load(local) as arrays:
        h = arrays[names.array_name(0, names.H)]  # (B, H)
    norm = float(np.linalg.norm(h.astype(np.float64)))  # over the batch, as analyses.state_norms
    assert math.isclose(pruned.data.metrics[names.layer_metric(0, names.H_NORM)], norm, rel_tol=1e-6)
