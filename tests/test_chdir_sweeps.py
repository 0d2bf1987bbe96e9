"""`hydra.job.chdir=true`: Hydra runs each job in its own folder, yet a sweep is one store (the launch
directory's, or a relative `tracking.uri` read from there) and relative file paths name launch-directory
files."""

import numpy as np
import pytest
from mlflow.tracking import MlflowClient
from omegaconf import OmegaConf
from sweeps import parent_id, read_states, run_sweep, sweep_runs

from lstm_exp.config.launch_paths import anchor_file_paths

SEEDS = "seed=0,1,2"


def sqlite_files(folder) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*.db"))


@pytest.mark.slow
@pytest.mark.parametrize("launcher, store, input_file", [
    ((), "mlflow.db", False),  # the default store
    (("hydra/launcher=joblib", "hydra.launcher.n_jobs=2"), "stores/runs.db", True),  # a relative tracking.uri
])
def test_a_sweep_of_jobs_in_their_own_folders_is_one_store(tmp_path, launcher, store, input_file):
    sequences = np.arange(2 * 3 * 6, dtype=np.float32).reshape(2, 3, 6) / 10  # (B, T, F)
    (tmp_path / "data").mkdir()
    np.save(tmp_path / "data" / "x.npy", sequences)
    overrides = [*launcher, SEEDS]
    if store != "mlflow.db":
        overrides.append(f"tracking.uri=sqlite:///{store}")
    if input_file:
        overrides += ["input=file", "input.path=data/x.npy"]
    proc = run_sweep("hydra.job.chdir=true", *overrides, cwd=tmp_path, sweep_dir=tmp_path / "sweep")
    assert proc.returncode == 0, proc.stderr[-3000:]

    assert sqlite_files(tmp_path) == [store]  # no store in any job's folder
    client = MlflowClient(f"sqlite:///{tmp_path / store}")
    parent, children = sweep_runs(client, parent_id(proc.stdout))
    experiment = client.get_experiment_by_name("lstm_exp").experiment_id
    assert len(client.search_runs([experiment])) == 1 + 3  # the parent and its three jobs, nothing else
    assert sorted(run.data.params["seed"] for run in children) == ["0", "1", "2"]
    assert all(run.info.status == "FINISHED" for run in [parent, *children])
    for run in children if input_file else []:  # each job read the launch directory's file
        assert run.data.params["input.path"] == str(tmp_path / "data" / "x.npy")
        states = read_states(client, run.info.run_id, tmp_path / "read" / run.info.run_id)
        np.testing.assert_array_equal(states["input"], sequences)


def test_relative_file_paths_are_anchored_only_away_from_the_launch_directory(tmp_path, monkeypatch):
    def config(initial_state):
        return OmegaConf.create({"input": {"path": "x.npy", "initial_state": initial_state},
                                 "model": {"weights": {"path": "/abs/w.npz"}}})

    monkeypatch.chdir(tmp_path)
    at_home = config("state.npz")
    anchor_file_paths(at_home, tmp_path)
    assert at_home == config("state.npz")  # written as they were: the same config hash as ever

    job_dir = tmp_path / "multirun" / "0"
    job_dir.mkdir(parents=True)
    monkeypatch.chdir(job_dir)
    away = config("state.npz")
    anchor_file_paths(away, tmp_path)
    assert away.input.path == str(tmp_path / "x.npy")
    assert away.input.initial_state == str(tmp_path / "state.npz")
    assert away.model.weights.path == "/abs/w.npz"
    for word in ("zeros", "random"):
        kept = config(word)
        anchor_file_paths(kept, tmp_path)
        assert kept.input.initial_state == word
