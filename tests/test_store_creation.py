"""A new SQLite store is created whole or not at all (`record/store_creation.py`).

MLflow migrates a new database in some forty steps; a full disk in the middle used to leave one that
no later run could open (`table _alembic_tmp_endpoints already exists`), even with space again.
"""

from __future__ import annotations

import contextlib
import hashlib
import sqlite3

import pytest
from conftest import error_lines, run_cli
from small_filesystem import resize, small_filesystem

from lstm_exp.record.store_creation import create_whole


def _tables(database) -> set[str]:
    with contextlib.closing(sqlite3.connect(database)) as db:
        return {name for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}


def test_an_empty_file_becomes_a_whole_store_and_an_existing_store_is_left_as_it_is(tmp_path):
    database = tmp_path / "mlflow.db"
    database.touch()  # what an older run on a full disk left: SQLite would migrate it in place
    create_whole(database)
    assert {"experiments", "runs", "metrics", "alembic_version"} <= _tables(database)
    assert not any(name.startswith("_alembic_tmp") for name in _tables(database))
    assert [p.name for p in tmp_path.iterdir()] == ["mlflow.db"]  # no temporary file left
    before = hashlib.sha256(database.read_bytes()).hexdigest()
    create_whole(database)
    assert hashlib.sha256(database.read_bytes()).hexdigest() == before


@pytest.mark.slow
def test_a_disk_that_fills_while_the_store_is_made_leaves_no_store_and_the_next_run_makes_it(tmp_path):
    probe = tmp_path / "probe.db"
    create_whole(probe)
    half = probe.stat().st_size // 2 // 4096 * 4096  # the disk fills half way through the migrations
    with small_filesystem(tmp_path / "disk", half) as disk:
        proc = run_cli("model=stacked", cwd=disk)
        assert proc.returncode == 2, proc.stderr[-3000:]
        assert "Traceback" not in proc.stderr
        assert error_lines(proc)[-1] == (
            "error: tracking.uri must be an MLflow store that opens (database or disk is full). "
            f"Received: tracking.uri='sqlite:///{disk}/mlflow.db'")
        assert not (disk / "mlflow.db").exists()
        assert not [p.name for p in disk.iterdir() if "creating" in p.name]
        resize(disk, 256 << 20)  # space again: the next run makes the store and records
        proc = run_cli("model=stacked", cwd=disk)
        assert proc.returncode == 0, proc.stderr[-3000:]
        with contextlib.closing(sqlite3.connect(disk / "mlflow.db")) as db:  # closed: the disk unmounts
            assert db.execute("SELECT status FROM runs").fetchall() == [("FINISHED",)]
