"""A sweep parent's table of jobs, logged as an MLflow table (`mlflow.load_table` reads it) and a CSV."""

import csv
import tempfile
from pathlib import Path

from lstm_exp.record.store_locks import retry_locked

TABLE = "sweep_summary.json"


def log_summary(client, run_id: str, rows: list[dict], tags: dict[str, str]) -> None:
    """Logs one row per job (columns: the union of the rows' keys, in first-seen order) and `tags`."""
    columns = list(dict.fromkeys(key for row in rows for key in row))
    table = {column: [row.get(column) for row in rows] for column in columns}
    if rows:
        retry_locked(lambda: client.log_table(run_id, table, TABLE))
    with tempfile.TemporaryDirectory(prefix="lstm_exp_summary_") as tmp:
        path = Path(tmp) / "sweep_summary.csv"
        with path.open("w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=columns)
            writer.writeheader()
            writer.writerows(rows)
        retry_locked(lambda: client.log_artifact(run_id, str(path)))
    for key, value in tags.items():
        retry_locked(lambda k=key, v=value: client.set_tag(run_id, k, v))
