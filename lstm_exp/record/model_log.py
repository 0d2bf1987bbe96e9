"""The run's stack as its MLflow model `model` (`tracking.log_model=true`), logged from `model.keras`.

The job saves the Keras model into the run's folder (`compute/export_model.py`); the recorder, which
never imports TensorFlow, logs that file as a `python_function` model whose loader is this module:
Keras reads the file only when the model is loaded. (MLflow's `keras` flavor saves a live
`keras.Model` itself, which would import TensorFlow here.) Then

    mlflow.pyfunc.load_model(f"runs:/{run_id}/model").predict(x)   # x (B, T, F) float32 -> (B, T, H)

runs the stack from zero initial states over every step; `.get_raw_model()` is the `keras.Model`.
Loading needs `lstm_exp` importable: it registers the TF1-style cell with Keras.
"""

import json
import shutil
import tempfile
import warnings
from importlib import metadata
from pathlib import Path

import numpy as np

from lstm_exp.record.artifacts import MODEL_FILE
from lstm_exp.record.store_locks import retry_locked

MODEL_NAME = "model"  # `runs:/<run id>/model`


def signature_from_shapes(shapes: dict):
    """(-1, -1, F) float32 in, (-1, -1, H) float32 out, from the run's `shapes.json` document."""
    from mlflow.models import ModelSignature
    from mlflow.types import Schema, TensorSpec

    features, hidden = shapes["actual"]["input"][-1], shapes["actual"]["output"][-1]
    return ModelSignature(inputs=Schema([TensorSpec(np.dtype(np.float32), (-1, -1, features))]),
                          outputs=Schema([TensorSpec(np.dtype(np.float32), (-1, -1, hidden))]))


def _requirements() -> list[str]:
    """What loading needs, at this install's versions (no inference: that would load TensorFlow here)."""
    found = []
    for name in ("mlflow", "keras", "tensorflow", "tensorflow-cpu", "numpy"):
        try:
            found.append(f"{name}=={metadata.version(name)}")
        except metadata.PackageNotFoundError:
            continue
    return found


def log_stack_model(client, run_id: str, folder: Path) -> str | None:
    """Logs `folder/model.keras`, if the job saved one, as the run's model; returns its model id.

    The file leaves the folder, so that it is not logged a second time among the run's artifacts.
    """
    keras_file = folder / MODEL_FILE
    if not keras_file.exists():
        return None
    import mlflow.pyfunc  # only now: a run without a model does not pay for importing it
    from mlflow.entities import LoggedModelOutput, LoggedModelStatus
    from mlflow.models import Model

    signature = signature_from_shapes(json.loads((folder / "shapes.json").read_text()))
    experiment_id = retry_locked(lambda: client.get_run(run_id)).info.experiment_id
    model = retry_locked(lambda: client.create_logged_model(experiment_id, MODEL_NAME, source_run_id=run_id))
    try:
        with tempfile.TemporaryDirectory(prefix="lstm_exp_model_") as tmp:
            data = shutil.move(keras_file, Path(tmp) / MODEL_FILE)
            local = Path(tmp) / MODEL_NAME
            described = Model(artifact_path=model.artifact_location, model_uuid=model.model_id,
                              run_id=run_id, model_id=model.model_id)
            with warnings.catch_warnings():  # an input example would make MLflow run the model here
                warnings.filterwarnings("ignore", ".*An input example was not provided", UserWarning)
                mlflow.pyfunc.save_model(local, loader_module=__name__, data_path=str(data),
                                         signature=signature, pip_requirements=_requirements(),
                                         mlflow_model=described)
            retry_locked(lambda: client.log_model_artifacts(model.model_id, str(local)))
        retry_locked(lambda: client.log_outputs(run_id, [LoggedModelOutput(model.model_id, step=0)]))
    except Exception:
        retry_locked(lambda: client.finalize_logged_model(model.model_id, LoggedModelStatus.FAILED))
        raise
    retry_locked(lambda: client.finalize_logged_model(model.model_id, LoggedModelStatus.READY))
    return model.model_id


class KerasStackModel:
    """What `mlflow.pyfunc.load_model` returns for this model (wrapped in MLflow's `PyFuncModel`)."""

    def __init__(self, model) -> None:
        self.model = model

    def get_raw_model(self):
        """The `keras.Model`."""
        return self.model

    def predict(self, data, params=None) -> np.ndarray:
        """The stack's output (B, T, H) for sequences `data` (B, T, F)."""
        import keras

        return keras.ops.convert_to_numpy(self.model(np.asarray(data, np.float32)))


def _load_pyfunc(path: str) -> KerasStackModel:
    """MLflow's loader-module hook: `path` is the model's copy of `model.keras`."""
    import keras

    import lstm_exp.compute.cells  # noqa: F401  (registers TF1LSTMCell before Keras reads the file)

    return KerasStackModel(keras.saving.load_model(path))
