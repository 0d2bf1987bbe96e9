"""Training checkpoints (compute/checkpoints.py, record/checkpoint_log.py) and resuming a killed
training (jobs/continuation.py) to the same weights, bit for bit, as one never interrupted."""

import signal
import zipfile

import numpy as np
import pytest
from conftest import compose, error_lines, run_cli
from faults import fault_overrides
from hypothesis import given
from hypothesis import strategies as st
from hypothesis_budget import budget
from mlflow.tracking import MlflowClient
from omegaconf import OmegaConf, open_dict
from recorded_run import copy_store

from lstm_exp.compute import tasks
from lstm_exp.compute.checkpoints import Checkpoint, read_checkpoint, save_checkpoint
from lstm_exp.compute.initializers import initial_weights
from lstm_exp.compute.training import Checkpointing, train
from lstm_exp.config.experiment import parse
from lstm_exp.config.specs import ModelSpec
from lstm_exp.config.task_schema import TaskConfig
from lstm_exp.errors import ConfigError

# A training of 4 epochs small enough for a CLI run of ~30 s on a loaded 2-core machine.
TRAINING = ("task=adding", "model.units=[5]", "task.timesteps=6", "task.train_size=72", "task.val_size=16",
            "task.batch_size=16", "task.epochs=4")
TAG = "lstm_exp."


def _checkpoint(epochs_done=2) -> Checkpoint:
    rng = np.random.default_rng(0)
    arrays = {"stack/layer_0/kernel": rng.normal(size=(2, 8)).astype(np.float32),
              "optimizer/0000/iteration": np.array(7, np.int64)}
    return Checkpoint(epochs_done, arrays, {"train_loss": [0.5, 0.4], "val_loss": [0.6, 0.3],
                                            "epoch_s": [1.0, 1.0]})


def test_a_checkpoint_reads_back_as_written(tmp_path):
    written = _checkpoint()
    read = read_checkpoint(save_checkpoint(tmp_path / "c.npz", written), "task.resume_from")
    assert read.epochs_done == 2 and read.val_loss == 0.3
    assert read.arrays.keys() == written.arrays.keys()
    for name, array in written.arrays.items():
        assert read.arrays[name].dtype == array.dtype and read.arrays[name].tobytes() == array.tobytes()
    assert [p.name for p in tmp_path.iterdir()] == ["c.npz"]  # no partial file left beside it


def test_a_write_cut_short_leaves_nothing_under_the_final_name(tmp_path, monkeypatch):
    def dies_midway(handle, **arrays):
        handle.write(b"PK\x03\x04 half a zip")
        raise KeyboardInterrupt  # as a Ctrl-C (or a kill) would stop the writer

    monkeypatch.setattr(np, "savez", dies_midway)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(tmp_path / "c.npz", _checkpoint())
    assert not (tmp_path / "c.npz").exists()


@budget(25)
@given(keep=st.floats(0.0, 0.999))
def test_a_truncated_checkpoint_is_refused_in_one_line(tmp_path_factory, keep):
    folder = tmp_path_factory.mktemp("truncated")
    data = save_checkpoint(folder / "c.npz", _checkpoint()).read_bytes()
    (folder / "c.npz").write_bytes(data[: int(len(data) * keep)])
    with pytest.raises(ConfigError) as refused:
        read_checkpoint(folder / "c.npz", "task.resume_from")
    line = str(refused.value)
    assert "\n" not in line and line.startswith("task.resume_from must be") and "c.npz" in line


def test_an_altered_checkpoint_fails_its_digest(tmp_path):
    path = save_checkpoint(tmp_path / "c.npz", _checkpoint())
    with np.load(path) as archive:
        arrays = {name: archive[name] for name in archive.files}
    arrays["stack/layer_0/kernel"][0, 0] += 1.0  # one weight changed, the scalars (and digest) kept
    np.savez(tmp_path / "altered.npz", **arrays)
    with pytest.raises(ConfigError, match="do not match the digest"):
        read_checkpoint(tmp_path / "altered.npz", "resume")
    with zipfile.ZipFile(tmp_path / "bare.npz", "w") as bare:
        bare.writestr("x.npy", b"")
    with pytest.raises(ConfigError, match="truncated or corrupt|not an lstm_exp checkpoint"):
        read_checkpoint(tmp_path / "bare.npz", "resume")


@budget(20)
@given(value=st.one_of(st.just(""), st.just("two words"), st.integers(), st.booleans(),
                       st.text(alphabet=" \t", min_size=1, max_size=3)))
def test_a_bad_resume_from_is_refused_in_one_line(value):
    cfg = compose("task=adding")
    with open_dict(cfg):
        cfg.task.resume_from = value
    with pytest.raises(ConfigError) as refused:
        parse(cfg)
    assert str(refused.value).startswith("task.resume_from must be null or the id of an MLflow run")


def test_resume_from_needs_the_tracking_store():
    with pytest.raises(ConfigError, match="task.resume_from must be null with tracking.enabled=false"):
        parse(compose("task=adding", "task.resume_from=0f3c"))


@pytest.mark.slow
def test_training_resumed_from_any_checkpoint_ends_with_the_same_weights():
    task = OmegaConf.structured(TaskConfig(name="adding", timesteps=6, train_size=40, val_size=16, epochs=4,
                                           batch_size=16))  # 40: a partial last batch
    spec = ModelSpec("lstm", (4, 3))
    start = initial_weights(spec, tasks.features(task), 0)
    saved = []
    straight = train(task, spec, start, 0, checkpointing=Checkpointing(every=1, save=saved.append))
    assert [c.epochs_done for c in saved] == [1, 2, 3, 4]
    assert saved[1].scalars["val_loss"] == straight.val_loss[:2]
    assert any(name.startswith("optimizer/") and name.endswith("momentum") for name in saved[0].arrays)
    for checkpoint in saved[:2]:
        resumed = train(task, spec, start, 0, checkpointing=Checkpointing(start=checkpoint))
        for name in straight.weights:
            assert resumed.weights[name].tobytes() == straight.weights[name].tobytes(), (checkpoint, name)
        for name in straight.readout:
            assert resumed.readout[name].tobytes() == straight.readout[name].tobytes(), name
        assert resumed.train_loss == straight.train_loss and resumed.val_loss == straight.val_loss


@pytest.mark.slow
def test_early_stopping_and_a_schedule_resume_from_any_checkpoint_to_the_same_end():
    # min_delta so large that only the first epoch counts as an improvement: training stops after
    # epoch 2 (patience 2) and ends with epoch 0's weights, whichever checkpoint it resumed from.
    controls = dict(patience=2, min_delta=1e3, restore_best_weights=True, schedule="cosine", warmup_epochs=1)
    task = OmegaConf.structured(TaskConfig(name="adding", timesteps=6, train_size=40, val_size=16, epochs=6,
                                           batch_size=16, **controls))
    spec = ModelSpec("lstm", (4,))
    start = initial_weights(spec, tasks.features(task), 0)
    saved = []
    straight = train(task, spec, start, 0, checkpointing=Checkpointing(every=1, save=saved.append))
    assert (straight.stopped_epoch, straight.best_epoch) == (2, 0)
    assert [c.epochs_done for c in saved] == [1, 2, 3]  # the last one at the stop
    assert any(name.startswith("early_stopping/best/") for name in saved[0].arrays)
    for checkpoint in saved:
        resumed = train(task, spec, start, 0, checkpointing=Checkpointing(start=checkpoint))
        for name in straight.weights:
            assert resumed.weights[name].tobytes() == straight.weights[name].tobytes(), (checkpoint, name)
        assert (resumed.stopped_epoch, resumed.best_epoch) == (2, 0)
        assert resumed.val_loss == straight.val_loss and resumed.learning_rates == straight.learning_rates


def _runs(folder):
    client = MlflowClient(f"sqlite:///{folder / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("lstm_exp").experiment_id
    return client, client.search_runs([experiment], order_by=["attributes.start_time ASC"])


def _weights(client, run_id, folder) -> dict[str, np.ndarray]:
    path = client.download_artifacts(run_id, "weights.npz", str(folder))
    with np.load(path) as archive:
        return {name: archive[name] for name in archive.files}


@pytest.fixture(scope="module")
def straight(tmp_path_factory):
    """The training run through the CLI without interruption: (launch folder, run id)."""
    folder = tmp_path_factory.mktemp("straight")
    proc = run_cli(*TRAINING, "task.checkpoint_every=2", cwd=folder)
    assert proc.returncode == 0, proc.stderr
    _, (run,) = _runs(folder)
    return folder, run.info.run_id


@pytest.mark.slow
def test_the_run_holds_its_checkpoints_and_marks_the_best(straight, tmp_path):
    folder, run_id = straight
    client, (run,) = _runs(folder)
    listed = sorted(a.path for a in client.list_artifacts(run_id, "checkpoints"))
    assert listed == ["checkpoints/epoch_0002.npz", "checkpoints/epoch_0004.npz"]  # checkpoint_every=2
    assert run.data.tags[TAG + "checkpoint"] == "checkpoints/epoch_0004.npz"
    val_loss = [m.value for m in client.get_metric_history(run_id, "val_loss")]
    best = "checkpoints/epoch_0002.npz" if val_loss[1] <= val_loss[3] else "checkpoints/epoch_0004.npz"
    assert run.data.tags[TAG + "best_checkpoint"] == best
    last = read_checkpoint(client.download_artifacts(run_id, listed[-1], str(tmp_path)), "resume")
    weights = _weights(client, run_id, tmp_path)
    for name, array in weights.items():  # the last checkpoint holds the weights the run ended with
        assert last.arrays[f"stack/{name}"].tobytes() == array.tobytes(), name
    assert last.scalars["val_loss"] == pytest.approx(val_loss, rel=1e-6)  # metrics go through float64


@pytest.mark.slow
@pytest.mark.parametrize("stop, how", [(signal.SIGKILL, "resume=true"), (signal.SIGTERM, "resume_from")],
                         ids=["sigkill-then-resume", "sigterm-then-resume_from"])
def test_a_killed_training_resumes_to_the_same_weights(straight, tmp_path, stop, how):
    proc = run_cli(*TRAINING, *fault_overrides(kill=[0], kill_after_epochs=2, kill_signal=stop),
                   cwd=tmp_path)
    assert proc.returncode == (-signal.SIGKILL if stop == signal.SIGKILL else 143), proc.stderr
    client, (killed,) = _runs(tmp_path)
    if stop == signal.SIGKILL:  # the recorder saw its job vanish and ended the run
        assert client.get_run(killed.info.run_id).info.status == "FAILED"
    else:
        assert killed.info.status == "KILLED"
    assert killed.data.tags[TAG + "checkpoint"] == "checkpoints/epoch_0002.npz"
    again = ("resume=true",) if how == "resume=true" else (f"task.resume_from={killed.info.run_id}",)
    proc = run_cli(*TRAINING, *again, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    client, (before, resumed) = _runs(tmp_path)
    assert before.info.run_id == killed.info.run_id and before.info.status != "FINISHED"  # left as it ended
    assert resumed.info.status == "FINISHED"
    assert resumed.data.tags[TAG + "continued_from"] == killed.info.run_id
    assert resumed.data.tags[TAG + "config_hash"] == killed.data.tags[TAG + "config_hash"]
    assert len(client.get_metric_history(resumed.info.run_id, "val_loss")) == 4  # the whole curve
    folder, straight_id = straight
    expected = _weights(MlflowClient(f"sqlite:///{folder / 'mlflow.db'}"), straight_id, tmp_path / "a")
    got = _weights(client, resumed.info.run_id, tmp_path / "b")
    assert expected.keys() == got.keys()
    for name in expected:
        assert got[name].tobytes() == expected[name].tobytes(), name
    if how == "resume_from":  # rerun retrains the continued run whole, and finds its arrays again
        proc = run_cli(resumed.info.run_id, module="lstm_exp.rerun", cwd=tmp_path)
        assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]


@pytest.mark.slow
def test_resume_from_refuses_a_run_it_cannot_continue_in_one_line(straight, stacked_run, tmp_path):
    folder = copy_store(straight[0], tmp_path / "trained")
    run_id = straight[1]
    cases = [
        # a run that did not train (the session's forward-only run, copied in its own store)
        (stacked_run.folder, (*TRAINING, f"task.resume_from={stacked_run.run_id}"), "a training run"),
        (folder, (*TRAINING[:-1], "task.epochs=5", f"task.resume_from={run_id}"),
         "a run of this same config"),
        (folder, (*TRAINING, "task.resume_from=no-such-run"), "no run has this id"),
    ]
    for cwd, args, allowed in cases:
        proc = run_cli(*args, cwd=cwd)
        lines = error_lines(proc)
        assert proc.returncode == 2 and len(lines) == 1, proc.stderr
        assert lines[0].startswith("error: task.resume_from must be") and allowed in lines[0], lines
    # A checkpoint cut short after it was logged (a disk that filled, a copy interrupted).
    client, _ = _runs(folder)
    path = client.download_artifacts(run_id, "checkpoints/epoch_0004.npz", str(tmp_path / "dl"))
    stored = next(folder.glob(f"mlartifacts/{run_id}/artifacts/checkpoints/epoch_0004.npz"))
    stored.write_bytes(open(path, "rb").read()[:1000])
    proc = run_cli(*TRAINING, f"task.resume_from={run_id}", cwd=folder)
    lines = error_lines(proc)
    assert proc.returncode == 2 and len(lines) == 1, proc.stderr
    assert "truncated or corrupt" in lines[0] and "epoch_0004.npz" in lines[0]
    _, runs = _runs(folder)
    assert len(runs) == 1  # nothing half-written: no run was opened for any refusal
