"""The table a sweep's parent run holds: one row per job of the sweep, in job order.

A job has a row whatever happened to it: it ran (its child run), `resume=true` skipped it (the
earlier run that holds its results, `reused` = True; that run's parent is the earlier sweep), or it
was refused before a run started (no run id; status INVALID for bad input, else FAILED).
"""

import csv
import json
import tempfile
from pathlib import Path

from omegaconf import OmegaConf

from lstm_exp.record.store import TAG_PREFIX, retry_locked

COLUMNS = ("job", "run_id", "run_name", "status", "reused", "overrides", "output_shape",
           "reference_max_abs_err", "error")


def _jobs(sweep_dir: Path) -> list[dict]:
    """Each job's number, overrides (as its child run's tag spells them) and saved outcome."""
    jobs = []
    for path in sweep_dir.glob("*/lstm_exp_job.json"):
        if not path.parent.name.isdigit():
            continue
        overrides_file = path.parent / ".hydra" / "overrides.yaml"
        overrides = None
        if overrides_file.is_file():
            overrides = " ".join(OmegaConf.load(overrides_file))
        jobs.append({"job": int(path.parent.name), "overrides": overrides,
                     "outcome": json.loads(path.read_text())})
    return sorted(jobs, key=lambda job: job["job"])


def _run_row(client, run, reused: bool = False) -> dict:
    row = {
        "run_id": run.info.run_id,
        "run_name": run.info.run_name,
        "status": run.info.status,
        "reused": reused,
        "overrides": run.data.tags.get(TAG_PREFIX + "overrides", ""),
        "output_shape": "",
        "reference_max_abs_err": run.data.metrics.get("reference_max_abs_err"),
        "error": run.data.tags.get(TAG_PREFIX + "error"),
    }
    row.update({n: v for n, v in sorted(run.data.metrics.items()) if n.endswith("_norm")})
    shapes = _shapes(client, run.info.run_id) if run.info.status == "FINISHED" else None
    if shapes:
        row["output_shape"] = str(tuple(shapes["actual"]["output"]))
    return row


def _shapes(client, run_id: str) -> dict | None:
    with tempfile.TemporaryDirectory() as tmp:
        try:
            return json.loads(Path(client.download_artifacts(run_id, "shapes.json", tmp)).read_text())
        except Exception:  # noqa: BLE001 - a child without artifacts just shows no shape
            return None


def _pop_by_overrides(by_id: dict, overrides: str | None):
    # A job that failed after its run started saved no run id; its run carries its overrides.
    for run_id, run in by_id.items():
        if overrides is not None and run.data.tags.get(TAG_PREFIX + "overrides") == overrides:
            return by_id.pop(run_id)
    return None


def child_rows(client, parent_run_id: str, sweep_dir: Path | None = None) -> list[dict]:
    """One row per job: overrides, output shape, final norms, reference error, status.

    Args:
        client: an `MlflowClient` on the sweep's store.
        parent_run_id: the sweep's parent run.
        sweep_dir: Hydra's sweep directory, whose job folders hold each job's overrides and outcome;
            without it (or when it holds none) the rows are the parent's child runs alone.
    """
    parent = client.get_run(parent_run_id)
    children = client.search_runs(
        [parent.info.experiment_id],
        f"tags.mlflow.parentRunId = '{parent_run_id}'",
        max_results=5000,
        order_by=["attributes.start_time ASC"],
    )
    by_id = {run.info.run_id: run for run in children}
    rows = []
    for job in _jobs(sweep_dir) if sweep_dir else []:
        outcome = job["outcome"]
        if outcome.get("skipped"):
            run = retry_locked(lambda o=outcome: client.get_run(o["run_id"]))
        else:
            run = by_id.pop(outcome.get("run_id") or "", None) or _pop_by_overrides(by_id, job["overrides"])
        if run is not None:
            row = _run_row(client, run, reused=bool(outcome.get("skipped")))
        else:
            row = {"run_id": None, "run_name": None, "reused": False, "output_shape": "",
                   "status": "INVALID" if outcome["exit_status"] == 2 else "FAILED",
                   "overrides": job["overrides"] or "", "reference_max_abs_err": None,
                   "error": outcome.get("error")}
        rows.append({"job": job["job"], **row})
    # Children no job folder accounts for (a launcher writing elsewhere) still belong in the table.
    rows += [{"job": None, **_run_row(client, run)} for run in by_id.values()]
    return rows


def log_summary(client, parent_run_id: str, sweep_dir: Path | None = None) -> list[dict]:
    """Logs `sweep_summary.json` (an MLflow table) and `sweep_summary.csv` on the parent run.

    Also tags the parent with `lstm_exp.jobs`, e.g. "6 jobs: 1 ran, 5 reused, 0 not run".
    """
    rows = child_rows(client, parent_run_id, sweep_dir)
    columns = list(dict.fromkeys([*COLUMNS, *(k for r in rows for k in r)]))
    table = {c: [r.get(c) for r in rows] for c in columns}
    retry_locked(lambda: client.log_table(parent_run_id, table, "sweep_summary.json"))
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "sweep_summary.csv"
        with path.open("w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=columns)
            writer.writeheader()
            writer.writerows(rows)
        retry_locked(lambda: client.log_artifact(parent_run_id, str(path)))
    reused = sum(bool(r["reused"]) for r in rows)
    not_run = sum(r["run_id"] is None for r in rows)
    counts = f"{len(rows)} jobs: {len(rows) - reused - not_run} ran, {reused} reused, {not_run} not run"
    retry_locked(lambda: client.set_tag(parent_run_id, TAG_PREFIX + "jobs", counts))
    return rows
