"""A `-m` sweep as one parent run with distinct children, its summary table, and `resume=true`.

One 6-job sweep is recorded for the module; each test gets its own copy of it (the resume test deletes
and fails children), so they run in any order.
"""

import csv
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
from conftest import run_cli
from mlflow.tracking import MlflowClient
from recorded_run import copy_store

pytestmark = pytest.mark.slow  # every test reads a 6-job sweep or runs one

SWEEP = ("-m", "model.units=[4],[4,5],[8,8,8]", "seed=0,1")
OUTPUT_SIZE = {"[4]": 4, "[4,5]": 5, "[8,8,8]": 8}


@pytest.fixture(scope="module")
def recorded_sweep(tmp_path_factory):
    launch = tmp_path_factory.mktemp("sweep")
    start = time.perf_counter()
    proc = run_cli(*SWEEP, cwd=launch)
    wall_s = time.perf_counter() - start
    assert proc.returncode == 0, proc.stderr
    client = MlflowClient(f"sqlite:///{launch / 'mlflow.db'}")
    print(f"6-job sweep: {wall_s:.1f} s wall")
    return SimpleNamespace(launch=launch, client=client, wall_s=wall_s)


@pytest.fixture
def sweep(recorded_sweep, tmp_path):
    """This test's own copy of the module's sweep and its store."""
    launch = copy_store(recorded_sweep.launch, tmp_path / "sweep")
    return SimpleNamespace(launch=launch, client=MlflowClient(f"sqlite:///{launch / 'mlflow.db'}"),
                           wall_s=recorded_sweep.wall_s)


def _runs(client: MlflowClient) -> tuple[list, list]:
    """(parents, children) of the lstm_exp experiment, oldest first; deleted runs left out."""
    experiment = client.get_experiment_by_name("lstm_exp").experiment_id
    runs = client.search_runs([experiment], order_by=["attributes.start_time ASC"])
    return ([r for r in runs if r.data.tags.get("lstm_exp.sweep") == "parent"],
            [r for r in runs if "mlflow.parentRunId" in r.data.tags])


def _summary(client: MlflowClient, parent_id: str, folder: Path) -> list[dict]:
    folder.mkdir(exist_ok=True)
    with open(client.download_artifacts(parent_id, "sweep_summary.csv", str(folder))) as handle:
        return list(csv.DictReader(handle))


def test_one_parent_and_six_distinctly_named_children(sweep):
    parents, children = _runs(sweep.client)
    assert len(parents) == 1 and len(children) == 6
    parent = parents[0]
    assert parent.data.tags["lstm_exp.overrides"] == "model.units=[4],[4,5],[8,8,8] seed=0,1"
    assert parent.info.run_name == "sweep model.units=[4],[4,5],[8,8,8] seed=0,1"
    assert {c.data.tags["mlflow.parentRunId"] for c in children} == {parent.info.run_id}
    names = [c.info.run_name for c in children]
    assert len(set(names)) == 6
    for child in children:  # each child is named from its own overrides
        assert child.data.tags["lstm_exp.overrides"] in child.info.run_name
        assert child.info.status == "FINISHED"


def test_summary_lists_every_child(sweep, tmp_path):
    (parent,), children = _runs(sweep.client)
    artifacts = {a.path for a in sweep.client.list_artifacts(parent.info.run_id)}
    assert {"sweep_summary.json", "sweep_summary.csv"} <= artifacts
    rows = _summary(sweep.client, parent.info.run_id, tmp_path)
    assert [r["run_id"] for r in rows] == [c.info.run_id for c in children]  # job order
    assert [r["job"] for r in rows] == ["0", "1", "2", "3", "4", "5"]
    for row, child in zip(rows, children, strict=True):
        units = row["overrides"].split()[0].split("=")[1]
        assert row["output_shape"] == f"(1, {OUTPUT_SIZE[units]})"
        assert row["status"] == "FINISHED"
        assert float(row["reference_max_abs_err"]) <= 1e-6
        assert float(row["layer_0.h_norm"]) == pytest.approx(child.data.metrics["layer_0.h_norm"])
        assert row["layer_0.c_norm"]
    assert parent.data.tags["lstm_exp.jobs"] == "6 jobs: 6 finished"


def test_a_job_refused_before_its_run_is_still_a_row(tmp_path):
    proc = run_cli("-m", "model.units=[0],[-1]", cwd=tmp_path)
    assert proc.returncode == 2
    (parent,), children = _runs(MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}"))
    assert children == [] and parent.info.status == "FAILED"
    rows = _summary(MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}"), parent.info.run_id, tmp_path)
    assert [(r["overrides"], r["status"], r["run_id"]) for r in rows] == [
        ("model.units=[0]", "INVALID", ""), ("model.units=[-1]", "INVALID", "")]
    assert "model.units[0]" in rows[0]["error"]


def _resume(sweep) -> tuple[list, list]:
    """Re-runs the sweep with resume=true; returns the children it created and its summary rows."""
    _, before = _runs(sweep.client)
    start = time.perf_counter()
    proc = run_cli(*SWEEP, "resume=true", cwd=sweep.launch)
    print(f"resumed sweep: {time.perf_counter() - start:.1f} s wall")
    assert proc.returncode == 0, proc.stderr
    parents, after = _runs(sweep.client)
    known = {c.info.run_id for c in before}
    new = [c for c in after if c.info.run_id not in known]
    versions = {c.data.tags["lstm_exp.code_version"] for c in after}
    if len(versions) > 1:  # resume compares code versions: an edit mid-test makes every job new
        pytest.skip("lstm_exp's sources changed while this test ran")
    rows = _summary(sweep.client, parents[-1].info.run_id, sweep.launch / f"summary{len(parents)}")
    return new, rows


def test_resume_runs_only_missing_or_failed_jobs(sweep):
    states = lambda: len(list(sweep.launch.glob("mlartifacts/**/states.npz")))  # noqa: E731
    (_, children) = _runs(sweep.client)
    assert states() == 6

    new, rows = _resume(sweep)
    assert new == [] and states() == 6
    # The new parent still lists every job, each pointing to the run that holds it.
    assert [r["run_id"] for r in rows] == [c.info.run_id for c in children]
    assert all(r["status"] == "SKIPPED" for r in rows)

    deleted, failed = children[1], children[4]
    sweep.client.delete_run(deleted.info.run_id)
    new, rows = _resume(sweep)
    assert [c.info.run_name for c in new] == [deleted.info.run_name]
    assert states() == 7
    assert rows[1]["run_id"] == new[0].info.run_id and rows[1]["status"] == "FINISHED"
    assert sum(r["status"] == "SKIPPED" for r in rows) == 5

    sweep.client.set_terminated(failed.info.run_id, "FAILED")
    new, _ = _resume(sweep)
    assert [c.info.run_name for c in new] == [failed.info.run_name]
