"""A run's terminal status, once set, is never overwritten: every end is "end it if it is still RUNNING".

Against a real SQLite store, through `LocalStore` (what sweep jobs, the recorder and sweep parents use).
"""

import pytest
from mlflow.tracking import MlflowClient

from lstm_exp.record.local_store import LocalStore
from lstm_exp.record.metrics import RunMetrics
from lstm_exp.record.run_end import RunEnded

KILLED_REASON = "terminated (SIGTERM: kill, scancel or a time limit)"


def _open(local: LocalStore, uri: str, parent: str | None = None) -> str:
    opened = local.open(uri, "ends", 15.0, {"lstm_exp.overrides": "seed=0"}, "job", parent, False)
    return opened["run_id"]


@pytest.mark.slow
def test_ending_a_killed_run_finished_leaves_it_killed_with_its_reason(store):
    _, uri = store
    local = LocalStore()
    run_id = _open(local, uri)
    assert local.end(uri, run_id, "KILLED", KILLED_REASON) == "KILLED"
    assert local.end(uri, run_id, "FINISHED") == "KILLED"  # the job that came late
    assert local.end(uri, run_id, "FAILED", "the job ended without ending its run") == "KILLED"
    run = MlflowClient(uri).get_run(run_id)
    assert run.info.status == "KILLED"
    assert run.data.tags["lstm_exp.error"] == KILLED_REASON


def test_a_job_whose_run_was_killed_logs_nothing_to_it(store, tmp_path):
    _, uri = store
    local = LocalStore()
    run_id = _open(local, uri)
    local.end(uri, run_id, "KILLED", KILLED_REASON)
    folder = tmp_path / "results"
    folder.mkdir()
    (folder / "summary.txt").write_text("done\n")
    with pytest.raises(RunEnded, match="KILLED"):
        local.log(uri, run_id, str(folder), RunMetrics(per_step={"layer_0.h_norm": (1.0,)}), {"seed": "0"},
                  {"k": "v"})
    client = MlflowClient(uri)
    run = client.get_run(run_id)
    assert run.info.status == "KILLED"
    assert run.data.metrics == {} and run.data.params == {} and "k" not in run.data.tags
    assert client.list_artifacts(run_id) == []


@pytest.mark.slow
def test_a_parent_ends_only_its_children_still_running(store):
    _, uri = store
    local = LocalStore()
    parent = _open(local, uri)
    finished, killed, orphan = (_open(local, uri, parent) for _ in range(3))
    local.end(uri, finished, "FINISHED")
    local.end(uri, killed, "KILLED", KILLED_REASON)
    assert local.end(uri, parent, "KILLED", "interrupted", orphans_reason="lost") == "KILLED"
    client = MlflowClient(uri)
    statuses = [client.get_run(r).info.status for r in (finished, killed, orphan)]
    assert statuses == ["FINISHED", "KILLED", "KILLED"]
    assert client.get_run(killed).data.tags["lstm_exp.error"] == KILLED_REASON
    assert client.get_run(orphan).data.tags["lstm_exp.error"] == "lost"
