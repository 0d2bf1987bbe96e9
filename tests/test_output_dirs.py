"""Hydra's output folders that cannot be written: exit 2, one line naming the key, nothing recorded.

A full disk is real here without mounting one: `/dev/full` takes an open and refuses every write with
ENOSPC, so a link to it where Hydra writes a file gives the error a full filesystem gives.
"""

import os
import sqlite3
from pathlib import Path

import pytest
from conftest import error_lines, run_cli

FULL = Path("/dev/full")
pytestmark = pytest.mark.skipif(not FULL.exists(), reason="needs /dev/full (Linux)")


def _refused(proc, key: str, value: Path, reason: str) -> None:
    lines = error_lines(proc)
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    assert lines[-1].startswith(f"error: {key} must be a folder where files can be written ({reason}")
    assert lines[-1].endswith(f"Received: {key}='{value}'")


def test_a_run_folder_on_a_full_disk_is_refused_in_one_line(tmp_path):
    out = tmp_path / "out"
    (out / ".hydra").mkdir(parents=True)
    (out / ".hydra" / "config.yaml").symlink_to(FULL)  # Hydra's first file in the folder
    proc = run_cli(f"hydra.run.dir={out}", cwd=tmp_path)
    _refused(proc, "hydra.run.dir", out, os.strerror(28))
    assert not (tmp_path / "mlflow.db").exists()  # refused before the store was opened


def test_a_run_folder_whose_hydra_folder_is_a_file_is_refused_in_one_line(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / ".hydra").write_text("not a folder")
    proc = run_cli(f"hydra.run.dir={out}", "tracking.enabled=false", cwd=tmp_path)
    _refused(proc, "hydra.run.dir", out, "")


def test_a_sweep_folder_on_a_full_disk_is_refused_before_the_parent_run(tmp_path):
    sweep = tmp_path / "sweep"
    sweep.mkdir()
    (sweep / "multirun.yaml").symlink_to(FULL)
    proc = run_cli("-m", "seed=0,1", f"hydra.sweep.dir={sweep}", cwd=tmp_path)
    _refused(proc, "hydra.sweep.dir", sweep, os.strerror(28))
    assert not (tmp_path / "mlflow.db").exists()


def test_a_joblib_jobs_folder_that_cannot_be_made_is_one_line_and_leaves_nothing_running(tmp_path):
    # The job folder is made in joblib's worker process, whose traceback stays there.
    blocker = tmp_path / "a file"
    blocker.write_text("in the way")
    proc = run_cli("-m", "hydra/launcher=joblib", "seed=0,1", f"hydra.sweep.dir={tmp_path / 'sweep'}",
                   f"hydra.sweep.subdir={blocker}/job" + "${hydra.job.num}", cwd=tmp_path)
    lines = error_lines(proc)
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    assert lines[-1].startswith("error: hydra.sweep.subdir must be a folder where files can be written ("), \
        lines
    with sqlite3.connect(tmp_path / "mlflow.db") as db:
        assert db.execute("SELECT count(*) FROM runs WHERE status = 'RUNNING'").fetchone() == (0,)
