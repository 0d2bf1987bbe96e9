"""`python -m lstm_exp.rerun RUN_ID`: a recorded run rebuilt from its own artifacts, bit for bit.

Each test reads or alters its own copy of the session's recorded run: they run in any order.
"""

import hashlib

import numpy as np
import pytest
from conftest import error_lines, run_cli
from mlflow.tracking import MlflowClient

from lstm_exp.cli import rerun

pytestmark = pytest.mark.slow  # every test reads or reruns a run recorded through the CLI


@pytest.fixture
def logged_run(stacked_run):
    """(launch directory, tracking URI, run id) of this test's copy of a recorded `model=stacked` run
    with `input.lengths=[3,2]` (conftest.stacked_run)."""
    return stacked_run.folder, stacked_run.uri, stacked_run.run_id


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


def test_a_run_recorded_with_a_retired_key_is_rebuilt_without_it(tmp_path):
    """config.yaml of earlier versions holds `run.inject_fault: null`; the schema no longer has it."""
    from omegaconf import OmegaConf

    import lstm_exp
    from lstm_exp.cli.rerun import rebuild_config

    recorded = OmegaConf.to_container(lstm_exp.compose("model=stacked", "seed=4"))
    recorded["run"]["inject_fault"] = None
    (tmp_path / "config.yaml").write_text(OmegaConf.to_yaml(recorded))
    cfg = rebuild_config(tmp_path / "config.yaml", tmp_path / "weights.npz", "r1")
    assert "inject_fault" not in cfg.run and cfg.seed == 4
    recorded["run"]["no_such_key"] = 1  # a key that was never ours is still refused
    (tmp_path / "config.yaml").write_text(OmegaConf.to_yaml(recorded))
    with pytest.raises(lstm_exp.ConfigError, match="RUN_ID"):
        rebuild_config(tmp_path / "config.yaml", tmp_path / "weights.npz", "r1")
