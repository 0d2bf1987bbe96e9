"""`task=file` (`compute/file_task.py`): the split, the targets, the baselines against independent
computations, padding that cannot leak into the loss, a real training on a generated file, and the
splits recorded as MLflow datasets (read back with the MLflow client)."""

import functools
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from conftest import run_cli
from hypothesis import given
from hypothesis import strategies as st
from hypothesis_budget import budget
from mlflow.tracking import MlflowClient

import lstm_exp
from lstm_exp.compute.file_task import load_file_task
from lstm_exp.compute.runner import execute, prepare
from lstm_exp.compute.tasks import HELD_OUT
from lstm_exp.compute.trainer import Trainer
from lstm_exp.config.experiment import parse
from lstm_exp.errors import ConfigError

BASELINE_TOLERANCE = 1e-12  # float64 both ways, summed in another order


def _experiment(path, *overrides):
    return parse(lstm_exp.compose("tracking.enabled=false", "task=file", f"task.path={path}",
                                  "model.units=[4]", *overrides))


def _load(path, *overrides, seed=0):
    experiment = _experiment(path, *overrides)
    return load_file_task(experiment.task, experiment.model, seed, experiment.run)


def _regression(rows=50, steps=7, features=2, targets=(3,), seed=0):
    rng = np.random.default_rng(seed)
    return {"x": rng.normal(size=(rows, steps, features)), "y": rng.normal(size=(rows, *targets))}


def test_seeded_split_keeps_every_row_once(tmp_path):
    arrays = _regression()
    arrays["x"][:, 0, 0] = np.arange(50)  # each row's id, to find it in either split
    np.savez(tmp_path / "d.npz", **arrays)
    data = _load(tmp_path / "d.npz", "task.val_fraction=0.2")
    train_ids, val_ids = data.x_train[:, 0, 0].astype(int), data.x_val[:, 0, 0].astype(int)
    assert (len(train_ids), len(val_ids)) == (40, 10)
    assert sorted([*train_ids, *val_ids]) == list(range(50))
    np.testing.assert_array_equal(data.y_val, arrays["y"][val_ids].astype(np.float32))
    assert (data.loss, data.per_step, data.outputs) == ("mse", False, 3)
    again, other = _load(tmp_path / "d.npz"), _load(tmp_path / "d.npz", seed=1)
    np.testing.assert_array_equal(again.x_val, data.x_val)
    assert not np.array_equal(other.x_val, data.x_val)
    mean = arrays["y"][train_ids].mean(axis=0)  # the baseline: the training targets' mean, on val
    expected = float(((arrays["y"][val_ids] - mean) ** 2).mean())
    assert data.baseline_loss == pytest.approx(expected, rel=1e-6)  # the file's float32 copy vs float64


def test_classes_per_step_with_lengths_and_their_baseline(tmp_path):
    rng = np.random.default_rng(3)
    y, y_val = rng.integers(0, 3, (30, 5)), rng.integers(0, 3, (10, 5))
    lengths, lengths_val = rng.integers(1, 6, 30), rng.integers(1, 6, 10)
    np.savez(tmp_path / "c.npz", x=rng.normal(size=(30, 5, 4)), y=y, x_val=rng.normal(size=(10, 5, 4)),
             y_val=y_val, lengths=lengths, lengths_val=lengths_val)
    data = _load(tmp_path / "c.npz", "task.classes=4")
    assert (data.loss, data.per_step, data.outputs, data.y_train.dtype) == ("crossentropy", True, 4, np.int32)
    # Class frequencies over the valid training steps, add-one smoothed over 4 classes.
    counts = [0, 0, 0, 0]
    for row, n in zip(y, lengths, strict=True):
        for label in row[:n]:
            counts[label] += 1
    frequencies = [(c + 1) / (sum(counts) + 4) for c in counts]
    losses = [-np.log(frequencies[label])
              for row, n in zip(y_val, lengths_val, strict=True) for label in row[:n]]
    assert data.baseline_loss == pytest.approx(sum(losses) / len(losses), rel=BASELINE_TOLERANCE)
    prepared = prepare(_experiment(tmp_path / "c.npz", "task.classes=4"))
    np.testing.assert_array_equal(prepared.data.x, data.x_val[:HELD_OUT])  # held out: validation's first
    np.testing.assert_array_equal(prepared.data.lengths, lengths_val[:HELD_OUT])


def test_digests_tell_data_apart(tmp_path):
    np.savez(tmp_path / "a.npz", **_regression(seed=0))
    np.savez(tmp_path / "b.npz", **_regression(seed=1))
    a, b, a_again = _load(tmp_path / "a.npz"), _load(tmp_path / "b.npz"), _load(tmp_path / "a.npz")
    assert [d.context for d in a.datasets] == ["training", "validation"]
    assert [d.digest for d in a.datasets] == [d.digest for d in a_again.datasets]
    assert {d.digest for d in a.datasets}.isdisjoint({d.digest for d in b.datasets})
    assert a.datasets[0].rows == 40 and a.datasets[0].shapes == {"x": [40, 7, 2], "y": [40, 3]}


@pytest.mark.slow
@pytest.mark.parametrize("per_step", [True, False], ids=["per-step", "last-step"])
def test_padding_past_lengths_does_not_reach_the_loss(tmp_path, per_step):
    rng = np.random.default_rng(5)
    lengths = rng.integers(2, 9, 24)
    arrays = {"x": rng.normal(size=(24, 8, 3)), "y": rng.normal(size=(24, 8, 2) if per_step else (24, 2)),
              "lengths": lengths}
    np.savez(tmp_path / "clean.npz", **arrays)
    pad = np.arange(8)[None, :] >= lengths[:, None]  # (N, T): the steps past each row's length
    arrays["x"][pad] = 1e6
    if per_step:
        arrays["y"][pad] = -1e6
    np.savez(tmp_path / "padded.npz", **arrays)
    experiment = _experiment(tmp_path / "clean.npz")
    weights = prepare(experiment).weights
    losses = []
    for name in ("clean", "padded"):
        data = _load(tmp_path / f"{name}.npz")
        trainer = Trainer(experiment.task, experiment.model, weights, 0, data)
        losses.append(trainer.evaluate(data.x_val, data.y_val, data.lengths_val))
    assert np.isfinite(losses[0]) and losses[0] == losses[1]


@pytest.mark.slow
def test_training_on_a_file_beats_its_baseline(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(160, 6, 1)).astype(np.float32)
    np.savez(tmp_path / "sum.npz", x=x, y=x.sum(axis=1))  # y (N, 1): the running sum's last value
    experiment = _experiment(tmp_path / "sum.npz", "task.epochs=8", "task.batch_size=16",
                             "task.learning_rate=0.05", "task.schedule=cosine")
    result = execute(experiment)
    training = result.training
    assert len(training.val_loss) == 8 and training.learning_rates[0] == 0.05
    assert training.val_loss[-1] < 0.5 * training.baseline_loss
    assert result.arrays["input"].shape == (HELD_OUT, 6, 1) and result.reference_max_abs_err < 1e-5


@pytest.mark.slow
def test_recorded_run_logs_its_datasets_and_controls(tmp_path):
    rng = np.random.default_rng(1)
    np.savez(tmp_path / "toy.npz", x=rng.normal(size=(40, 5, 2)), y=rng.integers(0, 3, 40))
    proc = run_cli("task=file", "task.path=toy.npz", "model.units=[3]", "task.epochs=4", "task.patience=1",
                   "task.min_delta=100", "task.warmup_epochs=1", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "early stopping: stopped after epoch 2 of 4; best val_loss" in proc.stdout
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    (run,) = client.search_runs([client.get_experiment_by_name("lstm_exp").experiment_id])
    expected = {d.context: d for d in _load(tmp_path / "toy.npz").datasets}
    logged = {i.tags[0].value: i.dataset for i in run.inputs.dataset_inputs if i.tags[0].value != "input"}
    assert set(logged) == {"training", "validation"}
    for context, dataset in logged.items():
        assert (dataset.name, dataset.digest) == ("toy", expected[context].digest)
        assert str(tmp_path / "toy.npz") in dataset.source
    assert run.data.metrics["stopped_epoch"] == 1 and run.data.metrics["best_epoch"] == 0
    rates = [m.value for m in client.get_metric_history(run.info.run_id, "learning_rate")]
    assert rates == pytest.approx([0.005, 0.01])  # warm-up half way, then the base rate


_DTYPES = st.sampled_from([np.float32, np.float64, np.int64, np.int32, np.uint8, np.float16])
# Mostly shapes that agree (N=6, T=3, F=2), so that the checks after the first are reached too.
_SHAPES = {"x": [(6, 3, 2), (4, 3, 2), (6, 3), (6, 0, 2)],
           "y": [(6,), (6, 2), (6, 3), (6, 3, 1), (5,), (6, 4, 1)],
           "x_val": [(2, 3, 2), (2, 3, 1), (0, 3, 2)], "y_val": [(2,), (2, 2), (2, 3), (2, 3, 1), (3,)],
           "lengths": [(6,), (5,), (6, 1)], "lengths_val": [(2,), (3,)], "z": [(1,)]}


@st.composite
def _members(draw):
    """Members named as task=file reads them (and one it does not), of small shapes and any type."""
    names = draw(st.sets(st.sampled_from(sorted(_SHAPES)), min_size=1))
    arrays = {}
    for name in names:
        shape = draw(st.sampled_from(_SHAPES[name]))
        dtype = draw(_DTYPES)
        size = int(np.prod(shape))
        values = draw(st.sampled_from(["ones", "range", "negative", "nan"] if dtype in (
            np.float32, np.float64, np.float16) else ["ones", "range", "negative"]))
        array = {"ones": np.ones(size), "range": np.arange(size) % 5, "negative": -np.ones(size),
                 "nan": np.full(size, np.nan)}[values]
        arrays[name] = array.reshape(shape).astype(dtype)
    return arrays


@budget(150)
@given(arrays=_members(), fraction=st.sampled_from([0.2, 0.5, 0.9]))
def test_any_file_is_loaded_consistently_or_refused_naming_a_key(tmp_path_factory, arrays, fraction):
    path = tmp_path_factory.mktemp("fuzz") / "d.npz"
    np.savez(path, **arrays)
    experiment = _fuzz_experiment()
    task = replace(experiment.task, path=str(path), val_fraction=fraction)
    try:
        data = load_file_task(task, experiment.model, 0, experiment.run)
    except ConfigError as error:
        assert error.key in ("task.path", "task.val_fraction", "task.classes")
        return
    rows, steps, features = arrays["x"].shape
    assert data.x_train.shape[1:] == data.x_val.shape[1:] == (steps, features)
    assert len(data.x_train) == len(data.y_train) and len(data.x_val) == len(data.y_val)
    assert np.isfinite(data.baseline_loss) and data.baseline_loss >= 0
    if data.loss == "crossentropy":
        assert 0 <= data.y_train.min() and max(data.y_train.max(), data.y_val.max()) < data.outputs
    for lengths in (data.lengths_train, data.lengths_val):
        assert lengths is None or (1 <= lengths.min() and lengths.max() <= steps)


@functools.cache
def _fuzz_experiment():
    return _experiment("unused.npz")


@pytest.mark.parametrize("kind", ["sine", "symbols"])
def test_the_example_script_writes_files_task_file_reads(tmp_path, kind):
    script = Path(__file__).resolve().parents[1] / "scripts" / "make_example_npz.py"
    args = [str(tmp_path / "e.npz"), "--kind", kind, "--rows", "40", "--steps", "12"]
    proc = subprocess.run([sys.executable, str(script), *args], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    data = _load(tmp_path / "e.npz")
    if kind == "sine":
        assert (data.loss, data.per_step, data.x_train.shape) == ("mse", True, (32, 12, 1))
    else:  # a separate validation split, with lengths; the class seen most often among 4
        assert (data.loss, data.per_step, data.outputs, len(data.x_val)) == ("crossentropy", False, 4, 10)
        assert data.lengths_val is not None and data.lengths_train.min() >= 6
