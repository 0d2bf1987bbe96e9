"""The tutorial's experiments end to end: CLI -> Keras -> a temporary SQLite MLflow store, read back."""

import numpy as np
import pytest
from conftest import error_lines, run_cli
from faults import fault_overrides
from mlflow.tracking import MlflowClient


def _read_states(client: MlflowClient, run_id: str, tmp_path) -> dict[str, np.ndarray]:
    path = client.download_artifacts(run_id, "states.npz", str(tmp_path))
    with np.load(path) as archive:
        return {name: archive[name] for name in archive.keys()}


@pytest.mark.slow
@pytest.mark.parametrize("model,output_shape,state_shapes", [
    ("basic", (1, 4), {"layer_0/h": (1, 4), "layer_0/c": (1, 4)}),
    ("stacked", (2, 3, 5), {"layer_0/h": (2, 4), "layer_0/c": (2, 4),
                            "layer_1/h": (2, 5), "layer_1/c": (2, 5)}),
])
def test_tutorial_experiment_is_recorded(store, tmp_path, model, output_shape, state_shapes):
    launch, uri = store
    proc = run_cli(f"model={model}", cwd=launch)
    assert proc.returncode == 0, proc.stderr
    assert f"output {output_shape} =" in proc.stdout
    assert "mlflow ui --backend-store-uri sqlite:///" in proc.stdout
    assert (launch / "mlflow.db").is_file()  # the default store, in the launch directory

    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name("lstm_exp")
    (run,) = client.search_runs([experiment.experiment_id])
    assert run.info.status == "FINISHED" and run.info.run_id in proc.stdout
    assert run.data.params["model.units"] == ("[4]" if model == "basic" else "[4, 5]")
    assert run.data.tags["lstm_exp.model"] == model
    assert len(run.data.tags["lstm_exp.config_hash"]) == 16
    assert run.data.metrics["reference_max_abs_err"] <= 1e-6

    states = _read_states(client, run.info.run_id, tmp_path)
    assert states["output"].shape == output_shape
    for name, shape in state_shapes.items():
        assert states[name].shape == shape
    # The logged final norm is the norm of the logged final state.
    assert run.data.metrics["layer_0.h_norm"] == pytest.approx(np.linalg.norm(states["layer_0/h"]), rel=1e-6)
    steps = client.get_metric_history(run.info.run_id, "layer_0.h_norm")
    assert [m.step for m in steps] == list(range(states["layer_0/sequence"].shape[1]))

    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"config.yaml", "states.npz", "weights.npz", "shapes.json", "summary.txt", "plots"} <= artifacts
    plots = {a.path for a in client.list_artifacts(run.info.run_id, "plots")}
    assert "plots/layer_0_h.png" in plots and "plots/layer_0_gates.png" in plots
    summary = client.download_artifacts(run.info.run_id, "summary.txt", str(tmp_path))
    assert "reference check" in open(summary).read()


@pytest.mark.slow
def test_sweep_is_a_parent_with_one_child_per_job(store):
    launch, uri = store
    proc = run_cli("-m", "model=basic,stacked", "seed=0,1", cwd=launch)
    assert proc.returncode == 0, proc.stderr
    client = MlflowClient(uri)
    runs = client.search_runs([client.get_experiment_by_name("lstm_exp").experiment_id])
    parents = [r for r in runs if r.data.tags.get("lstm_exp.sweep") == "parent"]
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert len(parents) == 1 and len(children) == 4
    assert {c.data.tags["mlflow.parentRunId"] for c in children} == {parents[0].info.run_id}
    assert len({c.info.run_name for c in children}) == 4
    assert all(r.info.status == "FINISHED" for r in runs)
    assert "sweep_summary.csv" in {a.path for a in client.list_artifacts(parents[0].info.run_id)}


@pytest.mark.slow
def test_tracking_disabled_writes_no_store(tmp_path):
    proc = run_cli("model=stacked", "tracking.enabled=false", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "output (2, 3, 5) =" in proc.stdout
    assert not (tmp_path / "mlflow.db").exists()


@pytest.mark.slow
def test_a_run_that_raises_is_recorded_failed(store):
    launch, uri = store
    proc = run_cli("model=stacked", *fault_overrides(forward=[0]), cwd=launch)
    assert proc.returncode == 1
    client = MlflowClient(uri)
    (run,) = client.search_runs([client.get_experiment_by_name("lstm_exp").experiment_id])
    assert run.info.status == "FAILED"
    assert "fault injected" in run.data.tags["lstm_exp.error"]


BAD_INPUTS = [
    ("model.cell=lstmx", "model.cell"),
    ("model.units=[4,0]", "model.units[1]"),
    ("model.units=[4,-1]", "model.units[1]"),
    ("model.units=[4,2.5]", "model.units[1]"),
    ("model.units=[4,abc]", "model.units[1]"),
    ("input.values=[[1,2],[3]]", "input.values"),
    ("input.values=[[1,a]]", "input.values"),
    ("input.path=missing.npy", "input.path"),
    ("model.weights.path=missing.npz", "model.weights.path"),
]


@pytest.mark.slow
@pytest.mark.parametrize("override,key", BAD_INPUTS)
def test_bad_input_exits_2_with_one_line(store, override, key):
    launch, _ = store
    proc = run_cli(override, cwd=launch)
    assert proc.returncode == 2, proc.stderr
    (line,) = error_lines(proc)
    assert key in line and "Traceback" not in proc.stderr
    assert not (launch / "mlflow.db").exists()  # nothing started, nothing written


@pytest.mark.slow
def test_weights_that_do_not_fit_the_input_exit_2(store, tmp_path):
    launch, _ = store
    weights = {"layer_0/kernel": np.zeros((6, 16)), "layer_0/recurrent_kernel": np.zeros((4, 16)),
               "layer_0/bias": np.zeros(16)}
    np.savez(tmp_path / "w.npz", **weights)
    proc = run_cli("input=random", "input.features=5", f"model.weights.path={tmp_path / 'w.npz'}",
                   cwd=launch)
    assert proc.returncode == 2
    (line,) = error_lines(proc)
    assert "model.weights.path" in line and "(5, 16)" in line and "(6, 16)" in line
