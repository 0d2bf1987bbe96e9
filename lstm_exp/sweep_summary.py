"""The table a sweep's parent run holds: one row per child run."""

import csv
import json
import tempfile
from pathlib import Path

from lstm_exp.tracking import retry_locked

COLUMNS = ("run_name", "status", "overrides", "output_shape", "reference_max_abs_err")


def child_rows(client, parent_run_id: str) -> list[dict]:
    """One row per child: overrides, output shape, final norms, reference error, status."""
    parent = client.get_run(parent_run_id)
    children = client.search_runs(
        [parent.info.experiment_id],
        f"tags.mlflow.parentRunId = '{parent_run_id}'",
        max_results=5000,
        order_by=["attributes.start_time ASC"],
    )
    rows = []
    for run in children:
        row = {
            "run_id": run.info.run_id,
            "run_name": run.info.run_name,
            "status": run.info.status,
            "overrides": run.data.tags.get("lstm_exp.overrides", ""),
            "output_shape": "",
            "reference_max_abs_err": run.data.metrics.get("reference_max_abs_err"),
        }
        row.update({n: v for n, v in sorted(run.data.metrics.items()) if n.endswith("_norm")})
        shapes = _shapes(client, run.info.run_id) if run.info.status == "FINISHED" else None
        if shapes:
            row["output_shape"] = str(tuple(shapes["actual"]["output"]))
        rows.append(row)
    return rows


def _shapes(client, run_id: str) -> dict | None:
    with tempfile.TemporaryDirectory() as tmp:
        try:
            return json.loads(Path(client.download_artifacts(run_id, "shapes.json", tmp)).read_text())
        except Exception:  # noqa: BLE001 - a child without artifacts just shows no shape
            return None


def log_summary(client, parent_run_id: str) -> list[dict]:
    """Logs `sweep_summary.json` (an MLflow table) and `sweep_summary.csv` on the parent run."""
    rows = child_rows(client, parent_run_id)
    columns = list(dict.fromkeys(["run_id", *COLUMNS, *(k for r in rows for k in r)]))
    table = {c: [r.get(c) for r in rows] for c in columns}
    retry_locked(lambda: client.log_table(parent_run_id, table, "sweep_summary.json"))
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "sweep_summary.csv"
        with path.open("w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=columns)
            writer.writeheader()
            writer.writerows(rows)
        retry_locked(lambda: client.log_artifact(parent_run_id, str(path)))
    return rows
