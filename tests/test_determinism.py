"""The same config gives bit-identical arrays whatever runs it: Hydra's basic launcher (jobs one after
another in one process), joblib's loky workers and submitit's processes. Arrays are compared as logged
(`states.npz` downloaded from each store); the seed is a run param.
"""

import numpy as np
import pytest
from mlflow.tracking import MlflowClient
from sweeps import CONFIG, JOBLIB_SWEEP, SUBMITIT_SWEEP, parent_id, read_states, run_sweep, shared_sweep
from sweeps import sweep_runs as runs_of

pytestmark = pytest.mark.slow


def _states_by_seed(store: str, stdout: str, folder) -> dict[int, tuple[str, dict]]:
    """seed -> (config hash, arrays) of every FINISHED child of the sweep."""
    client = MlflowClient(store)
    _, children = runs_of(client, parent_id(stdout))
    return {
        int(run.data.params["seed"]): (run.data.tags["lstm_exp.config_hash"],
                                       read_states(client, run.info.run_id, folder / run.info.run_id))
        for run in children if run.info.status == "FINISHED"
    }


def _assert_identical(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for name in a:
        assert a[name].dtype == b[name].dtype and a[name].tobytes() == b[name].tobytes(), name


def test_arrays_are_bit_identical_across_launchers(tmp_path, tmp_path_factory):
    basic = run_sweep(*CONFIG, "seed=0,1", cwd=tmp_path, sweep_dir=tmp_path / "sweep")
    assert basic.returncode == 0, basic.stderr
    joblib, submitit = (shared_sweep(tmp_path_factory, s) for s in (JOBLIB_SWEEP, SUBMITIT_SWEEP))
    by_launcher = {
        "basic": _states_by_seed(f"sqlite:///{tmp_path / 'mlflow.db'}", basic.stdout, tmp_path),
        "joblib": _states_by_seed(joblib.store, joblib.proc.stdout, tmp_path / "joblib"),
        "submitit": _states_by_seed(submitit.store, submitit.proc.stdout, tmp_path / "submitit"),
    }
    basic_states = by_launcher["basic"]
    assert sorted(basic_states) == [0, 1]
    assert 0 in by_launcher["submitit"] and {0, 1} <= by_launcher["joblib"].keys()
    for launcher, states in by_launcher.items():
        for seed in {0, 1} & states.keys():
            config_hash, arrays = states[seed]
            assert config_hash == basic_states[seed][0], (launcher, seed)
            _assert_identical(arrays, basic_states[seed][1])
    # The seed matters: the two configs differ in every random array.
    assert not np.array_equal(basic_states[0][1]["output"], basic_states[1][1]["output"])
