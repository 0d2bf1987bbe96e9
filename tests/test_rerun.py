"""`python -m lstm_exp.rerun RUN_ID`: a recorded run rebuilt from its own artifacts, bit for bit.

The module's one recorded run is altered by the last test (its logged weights), so it runs last.
"""

import hashlib

import numpy as np
import pytest
from conftest import error_lines, run_cli
from mlflow.tracking import MlflowClient

from lstm_exp.cli import rerun


@pytest.fixture(scope="module")
def logged_run(tmp_path_factory):
    """(launch directory, tracking URI, run id) of one recorded `model=stacked` run."""
    launch = tmp_path_factory.mktemp("rerun")
    proc = run_cli("model=stacked", "input.lengths=[3,2]", cwd=launch)
    assert proc.returncode == 0, proc.stderr
    uri = f"sqlite:///{launch / 'mlflow.db'}"
    client = MlflowClient(uri)
    (run,) = client.search_runs([client.get_experiment_by_name("lstm_exp").experiment_id])
    return launch, uri, run.info.run_id


def test_a_run_records_its_input_as_a_dataset(logged_run):
    _, uri, run_id = logged_run
    inputs = MlflowClient(uri).get_run(run_id).inputs.dataset_inputs
    assert inputs and inputs[0].dataset.name == "input"


def test_unknown_run_exits_2_with_one_line(logged_run, capsys):
    _, uri, _ = logged_run
    with pytest.raises(SystemExit) as exit_info:
        rerun.main(["0123456789abcdef0123456789abcdef", "--tracking-uri", uri])
    assert exit_info.value.code == 2
    (line,) = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert line.startswith("error: RUN_ID") and "0123456789abcdef" in line


def test_rerun_of_a_recorded_run_is_bit_identical(logged_run, tmp_path):
    launch, uri, run_id = logged_run
    before = hashlib.sha256((launch / "mlflow.db").read_bytes()).hexdigest()
    proc = run_cli(run_id[:8], module="lstm_exp.rerun", cwd=launch)  # the default store, a prefix
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # Reading only: the rebuilt run has tracking off, and the store is opened read-only.
    assert hashlib.sha256((launch / "mlflow.db").read_bytes()).hexdigest() == before
    lines = proc.stdout.splitlines()
    verdicts = dict(line.split(maxsplit=1) for line in lines[:-1])
    assert {"input", "output", "layer_1/c", "layer_0/gates/f"} <= set(verdicts)
    assert set(verdicts.values()) == {"identical"}
    assert lines[-1] == f"run {run_id}: all {len(verdicts)} arrays bit-identical"


def test_altered_logged_weights_are_reported(logged_run, tmp_path):
    launch, uri, run_id = logged_run
    (path,) = launch.glob(f"mlartifacts/**/{run_id}/artifacts/weights.npz")
    with np.load(path) as archive:
        weights = dict(archive)
    weights["layer_1/kernel"][0, 0] += 0.5
    np.savez(path, **weights)
    proc = run_cli(run_id, "--tracking-uri", uri, module="lstm_exp.rerun", cwd=tmp_path)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    verdicts = dict(line.split(maxsplit=1) for line in proc.stdout.splitlines()[:-1])
    assert verdicts["layer_0/h"] == "identical"  # the first layer's weights are untouched
    assert verdicts["layer_1/h"].startswith("max |diff| = ") and verdicts["output"] != "identical"
    assert "arrays differ" in proc.stdout.splitlines()[-1]
    assert not error_lines(proc)


def test_a_trained_run_retrains_to_the_same_weights_bit_for_bit(tmp_path):
    # Small enough to train in seconds; what matters is that training again gives the same bits.
    proc = run_cli("task=adding", "task.epochs=2", "task.train_size=256", "task.val_size=64",
                   "model.units=[8]", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "epoch 2/2" in proc.stdout  # the per-epoch progress line
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    (run,) = client.search_runs([client.get_experiment_by_name("lstm_exp").experiment_id])
    assert {"train_loss", "val_loss", "baseline_loss", "train_s"} <= set(run.data.metrics)
    assert [m.step for m in client.get_metric_history(run.info.run_id, "val_loss")] == [0, 1]
    proc = run_cli(run.info.run_id, module="lstm_exp.rerun", cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "weights:layer_0/kernel" in proc.stdout and "identical" in proc.stdout
