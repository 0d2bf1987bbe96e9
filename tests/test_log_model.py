"""`tracking.log_model=true`: the run's stack is its MLflow model `model`; `mlflow.pyfunc` loads it back
and predicts the run's own output, and the NumPy reference's output on sequences the run never saw."""

import re

import numpy as np
import pytest
from conftest import compose, run_cli
from mlflow.tracking import MlflowClient
from omegaconf import OmegaConf

from lstm_exp.compute.initializers import initial_weights
from lstm_exp.compute.reference import reference_forward
from lstm_exp.config.experiment import parse
from lstm_exp.config.schema import ExperimentConfig
from lstm_exp.config.specs import ModelSpec
from lstm_exp.config.validate import validate_model
from lstm_exp.record import store as run_store
from lstm_exp.record.identity import config_hash

TOLERANCE = 1e-6


@pytest.mark.slow
@pytest.mark.parametrize("extras", [[], ["model.peepholes=true", "model.proj_size=3"]],
                         ids=["stock_lstm", "tf1_cell"])
def test_the_logged_model_predicts_what_the_run_computed(store, monkeypatch, extras):
    import mlflow

    launch, uri = store
    proc = run_cli("model=stacked", "tracking.log_model=true", *extras, cwd=launch)
    assert proc.returncode == 0, proc.stderr
    run_id = re.search(r"MLflow run ([0-9a-f]{32})", proc.stdout).group(1)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)

    model = mlflow.pyfunc.load_model(f"runs:/{run_id}/model")
    assert model.metadata.run_id == run_id
    hidden = 3 if extras else 5
    assert [spec.shape for spec in model.metadata.signature.inputs.inputs] == [(-1, -1, 6)]
    assert [spec.shape for spec in model.metadata.signature.outputs.inputs] == [(-1, -1, hidden)]

    folder = launch / "downloaded"
    mlflow.artifacts.download_artifacts(run_id=run_id, dst_path=str(folder))
    assert not (folder / "model.keras").exists()  # the run's model, not a loose file among its artifacts
    with np.load(folder / "states.npz") as states:
        logged_input, logged_output = states["input"], states["output"]
    with np.load(folder / "weights.npz") as archive:
        weights = {name: archive[name] for name in archive.keys()}
    assert logged_output.shape == (2, 3, hidden)
    np.testing.assert_allclose(model.predict(logged_input), logged_output, rtol=0, atol=TOLERANCE)

    cfg = OmegaConf.merge(OmegaConf.structured(ExperimentConfig), OmegaConf.load(folder / "config.yaml"))
    spec = validate_model(cfg.model)
    assert spec.has_extras == bool(extras)  # the TF1-style cell went through Keras's file and back
    x = np.random.default_rng(11).standard_normal((4, 7, 6)).astype(np.float32)  # new batch and length
    expected = reference_forward(spec, weights, x, None, {})["output"]  # (4, 7, H) float64
    predicted = model.predict(x)
    assert predicted.shape == (4, 7, hidden) and predicted.dtype == np.float32
    np.testing.assert_allclose(predicted, expected, rtol=0, atol=TOLERANCE)


@pytest.mark.slow
@pytest.mark.parametrize("spec", [
    ModelSpec("lstm", (4, 5)),
    ModelSpec("gru", (3, 2), bidirectional=True),
    ModelSpec("simple_rnn", (3,)),
    ModelSpec("lstm", (4, 3), bidirectional=True, peepholes=True, cell_clip=0.5, proj_size=2, proj_clip=0.3),
], ids=["lstm", "gru_bidirectional", "simple_rnn", "tf1_cell_bidirectional"])
def test_the_saved_keras_model_is_the_reference_stack(tmp_path, spec):
    """The `.keras` file `tracking.log_model` logs, read back by Keras alone, for every cell and direction."""
    import keras

    import lstm_exp.compute.cells  # noqa: F401  (registers the TF1-style cell, as the model's loader does)
    from lstm_exp.compute.export_model import save_stack_model

    weights = initial_weights(spec, 6, seed=3)
    save_stack_model(spec, weights, 6, tmp_path / "model.keras")
    model = keras.saving.load_model(tmp_path / "model.keras")
    x = np.random.default_rng(5).standard_normal((3, 4, 6)).astype(np.float32)
    expected = reference_forward(spec, weights, x, None, {})["output"]  # (3, 4, H) or (3, 4, 2H)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(model(x)), expected, rtol=0, atol=TOLERANCE)


def _tags(cfg) -> dict[str, str]:
    return run_store.run_tags(parse(cfg), config_hash(cfg), [])


@pytest.mark.slow
def test_resume_reuses_a_run_without_a_model_only_when_no_model_is_asked_for(tmp_path):
    """`tracking.log_model` is not part of the config hash; the `lstm_exp.logged_model` tag decides."""
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiment = client.create_experiment("resume")
    plain, with_model = compose("model=stacked"), compose("model=stacked", "tracking.log_model=true")

    def recorded(cfg) -> str:
        run_id = run_store.start_run(client, experiment, "job", _tags(cfg))
        client.set_terminated(run_id, "FINISHED")
        return run_id

    without = recorded(plain)
    assert run_store.finished_twin(client, experiment, _tags(plain)) == without
    assert run_store.finished_twin(client, experiment, _tags(with_model)) is None
    modelled = recorded(with_model)
    assert run_store.finished_twin(client, experiment, _tags(with_model)) == modelled
    assert run_store.finished_twin(client, experiment, _tags(plain)) in (without, modelled)
