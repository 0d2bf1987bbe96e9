"""`task=file`'s training and validation splits as MLflow datasets of the run.

The job describes each split (`compute/file_task.DatasetInfo`: name, digest, source, shapes) in the run
folder's `datasets.json`; the arrays themselves never travel to the recorder process. Each split is
made an MLflow dataset with `mlflow.data.from_numpy` over an empty array of its dtype and trailing
shape (so the schema is MLflow's own tensor spec), with the file as its source and our digest over
the whole split, and its profile set to the real row count. Runs on different data show different
digests in the UI's "Datasets used" column and `run.inputs.dataset_inputs`.
"""

import json
import warnings
from pathlib import Path

import numpy as np

from lstm_exp.config import names
from lstm_exp.record.store_locks import retry_locked


def log_file_datasets(client, run_id: str, folder: Path) -> None:
    """Logs the splits described in `folder`/datasets.json, if there is one, with their contexts."""
    described = folder / names.DATASETS_FILE
    if not described.is_file():
        return
    import mlflow.data
    from mlflow.entities import Dataset, DatasetInput, InputTag

    inputs = []
    for info in json.loads(described.read_text()):
        empty = {m: np.zeros((0, *shape[1:]), info["dtypes"][m]) for m, shape in info["shapes"].items()}
        features = empty["x"] if "lengths" not in empty else {"x": empty["x"], "lengths": empty["lengths"]}
        with warnings.catch_warnings():
            # MLflow registers its local-file source class twice and warns that a path could be
            # either of the two (the same class): nothing for the user to act on.
            warnings.filterwarnings("ignore", "The specified dataset source can be interpreted")
            dataset = mlflow.data.from_numpy(features, source=info["source"], targets=empty["y"],
                                             name=info["name"], digest=info["digest"])
        entity = dataset._to_mlflow_entity()
        profile = json.dumps({"num_rows": info["rows"], "shapes": info["shapes"]})
        dataset = Dataset(entity.name, entity.digest, entity.source_type, entity.source, entity.schema,
                          profile)
        inputs.append(DatasetInput(dataset, [InputTag(key="mlflow.data.context", value=info["context"])]))
    # Parallel jobs on one file race to create its dataset rows, as for the input (store.log_dataset).
    retry_locked(lambda: client.log_inputs(run_id, datasets=inputs),
                 transient=("duplicate key", "UNIQUE constraint failed"))
