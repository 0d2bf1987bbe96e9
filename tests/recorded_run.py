"""A run recorded through the real CLI into a launch folder's default SQLite store, and copies of it.

The session records one run (conftest's `stacked_run_original`); each test that reads or alters a
recorded run gets its own copy (`stacked_run`), so no test sees what another one did to the store.
A copy is a store of its own: the paths MLflow wrote into the database (the experiment's artifact
location, each run's artifact URI) name the copy's folder, not the original's. `copy_store` does the
same for any launch folder, such as a module's shared sweep that one test alters.
"""

import contextlib
import shutil
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from conftest import run_cli
from mlflow.tracking import MlflowClient

# The tutorial's stack with a shorter second row: its rerun must replay the recorded lengths too.
STACKED = ("model=stacked", "input.lengths=[3,2]")


@dataclass(frozen=True)
class RecordedRun:
    """One FINISHED run in `folder`'s default store: `folder`/mlflow.db, artifacts in `folder`/mlartifacts."""

    folder: Path
    run_id: str

    @property
    def uri(self) -> str:
        return f"sqlite:///{self.folder / 'mlflow.db'}"


def record(folder: Path, *overrides: str) -> RecordedRun:
    """Runs `python -m lstm_exp.run overrides` from `folder` into its default store; its one run."""
    proc = run_cli(*overrides, cwd=folder)
    assert proc.returncode == 0, proc.stderr
    client = MlflowClient(f"sqlite:///{folder / 'mlflow.db'}")
    (run,) = client.search_runs([client.get_experiment_by_name("lstm_exp").experiment_id])
    assert run.info.status == "FINISHED"
    return RecordedRun(folder, run.info.run_id)


def copy_store(folder: Path, to: Path) -> Path:
    """A launch folder and its default store copied to the new folder `to`, every path in the database
    moved there too (a test that alters the copy leaves the original as it was); returns `to`."""
    shutil.copytree(folder, to)
    old, new = str(folder), str(to)
    with contextlib.closing(sqlite3.connect(to / "mlflow.db")) as db:
        tables = [name for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        for table in tables:
            for _, name, kind, *_ in db.execute(f'PRAGMA table_info("{table}")').fetchall():
                if "CHAR" in kind.upper() or "TEXT" in kind.upper():
                    db.execute(f'UPDATE "{table}" SET "{name}" = replace("{name}", ?, ?)'
                               f' WHERE instr("{name}", ?)', (old, new, old))
        db.commit()
    return to


def copy_run(run: RecordedRun, folder: Path) -> RecordedRun:
    """The store of `run` copied into the new folder `folder` (`copy_store`)."""
    return RecordedRun(copy_store(run.folder, folder), run.run_id)
