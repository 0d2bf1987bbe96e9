"""The commands that only read runs (compare, rerun, weights export) never write to the store they are
given: a database that is not an MLflow store of the installed MLflow's schema gets one line, exit 2,
and is left byte for byte (PostgreSQL: table for table) as it was."""

import contextlib
import hashlib
import io
import sqlite3
import subprocess
import sys

import pytest
from conftest import error_lines, run_cli
from hypothesis import given
from hypothesis import strategies as st
from hypothesis_budget import budget
from mlflow.tracking import MlflowClient
from services import postgres_cluster

from lstm_exp.cli import compare
from lstm_exp.record.read_only import schema_head

# Each read-only command, with the arguments that make it open the store.
COMMANDS = {
    "compare": ("lstm_exp.compare",),
    "rerun": ("lstm_exp.rerun", "0123abcd"),
    "weights export": ("lstm_exp.weights", "export", "0123abcd", "--layout", "torch"),
}
OLDER_REVISION = "0584bdc529eb"  # one of MLflow's own migrations, below the head
UNKNOWN_REVISION = "ffffffffffff"  # no MLflow has it: a newer one wrote the store


def sha256(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def another_application(path) -> None:
    with contextlib.closing(sqlite3.connect(path)) as db:
        db.execute("CREATE TABLE invoices (id INTEGER PRIMARY KEY, total REAL)")
        db.execute("INSERT INTO invoices (total) VALUES (12.5)")
        db.commit()


def mlflow_store_at(path, revision: str) -> None:
    """An MLflow store made by the installed MLflow, its schema revision rewritten to `revision`."""
    MlflowClient(f"sqlite:///{path}").search_experiments()  # creates the schema at the head revision
    with contextlib.closing(sqlite3.connect(path)) as db:
        db.execute("UPDATE alembic_version SET version_num = ?", (revision,))
        db.commit()


STORES = {
    "another application's database": another_application,
    "an empty file": lambda path: path.write_bytes(b""),
    "an older MLflow's store": lambda path: mlflow_store_at(path, OLDER_REVISION),
    "a newer MLflow's store": lambda path: mlflow_store_at(path, UNKNOWN_REVISION),
    "random bytes": lambda path: path.write_bytes(bytes(range(256)) * 8),
}


@pytest.mark.slow
@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize("kind", STORES)
def test_a_database_that_is_no_store_of_this_mlflow_is_refused_unchanged(tmp_path, command, kind):
    path = tmp_path / "store.db"
    STORES[kind](path)
    before = sha256(path)
    proc = run_cli(*COMMANDS[command][1:], "--tracking-uri", f"sqlite:///{path}",
                   module=COMMANDS[command][0], cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    (line,) = error_lines(proc)
    assert line.startswith("error: --tracking-uri must be an MLflow store") and str(path) in line
    assert sha256(path) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["store.db"]  # no journal, lock or artifacts


@pytest.mark.slow
@pytest.mark.parametrize("command", COMMANDS)
def test_a_missing_sqlite_file_is_refused_and_not_created(tmp_path, command):
    path = tmp_path / "nowhere" / "mlflow.db"
    proc = run_cli(*COMMANDS[command][1:], "--tracking-uri", f"sqlite:///{path}",
                   module=COMMANDS[command][0], cwd=tmp_path)
    assert proc.returncode == 2
    assert error_lines(proc) == [f"error: --tracking-uri must be an existing MLflow store (no such SQLite "
                                 f"file). Received: --tracking-uri='sqlite:///{path}'"]
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_the_line_says_which_schema_and_how_to_migrate(tmp_path):
    path = tmp_path / "old.db"
    mlflow_store_at(path, OLDER_REVISION)
    proc = run_cli("--tracking-uri", f"sqlite:///{path}", module="lstm_exp.compare", cwd=tmp_path)
    (line,) = error_lines(proc)
    assert f"({schema_head()})" in line and f"revision {OLDER_REVISION}" in line
    assert "mlflow db upgrade" in line


@pytest.mark.slow
def test_reading_a_store_of_this_mlflow_leaves_it_unchanged(tmp_path):
    path = tmp_path / "mlflow.db"
    client = MlflowClient(f"sqlite:///{path}")
    client.create_experiment("lstm_exp")
    before = sha256(path)
    proc = run_cli("--tracking-uri", f"sqlite:///{path}", module="lstm_exp.compare", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "no runs match"
    assert sha256(path) == before


@given(tables=st.lists(st.from_regex(r"[a-z][a-z0-9_]{0,12}", fullmatch=True), min_size=1, max_size=6,
                       unique=True),
       rows=st.integers(0, 3))
@budget(12)
def test_any_other_sqlite_database_is_left_byte_for_byte(tmp_path_factory, tables, rows):
    path = tmp_path_factory.mktemp("other") / "app.db"
    with contextlib.closing(sqlite3.connect(path)) as db:
        for name in tables:
            db.execute(f'CREATE TABLE "{name}" (a, b)')
            db.executemany(f'INSERT INTO "{name}" VALUES (?, ?)', [(i, str(i)) for i in range(rows)])
        db.commit()
    before = sha256(path)
    stderr = io.StringIO()
    with contextlib.redirect_stderr(stderr), pytest.raises(SystemExit) as stop:
        compare.main(["--tracking-uri", f"sqlite:///{path}"])
    assert stop.value.code == 2
    assert len(stderr.getvalue().splitlines()) == 1
    assert sha256(path) == before


@pytest.fixture(scope="module")
def empty_postgres():
    with postgres_cluster() as uri:
        yield uri


def _postgres_tables(uri: str) -> list[str]:
    import sqlalchemy

    engine = sqlalchemy.create_engine(uri)
    try:
        return sorted(sqlalchemy.inspect(engine).get_table_names())
    finally:
        engine.dispose()


@pytest.mark.slow
@pytest.mark.service
@pytest.mark.parametrize("command", COMMANDS)
def test_an_empty_postgres_database_gets_no_tables(empty_postgres, tmp_path, command):
    proc = run_cli(*COMMANDS[command][1:], "--tracking-uri", empty_postgres,
                   module=COMMANDS[command][0], cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    (line,) = error_lines(proc)
    assert line.startswith("error: --tracking-uri must be an MLflow store") and "database is empty" in line
    assert _postgres_tables(empty_postgres) == []


# Holds an exclusive lock on the database until its stdin closes (a writer in a long transaction).
LOCK_HOLDER = ("import sqlite3, sys\n"
               "db = sqlite3.connect(sys.argv[1], isolation_level=None)\n"
               "db.execute('BEGIN EXCLUSIVE')\n"
               "print('held', flush=True)\n"
               "sys.stdin.read()\n")


@pytest.mark.slow
@pytest.mark.parametrize("command", COMMANDS)
def test_a_store_locked_by_another_process_is_one_line_after_a_quiet_wait(tmp_path, command):
    path = tmp_path / "mlflow.db"
    MlflowClient(f"sqlite:///{path}").create_experiment("lstm_exp")
    before = sha256(path)
    holder = subprocess.Popen([sys.executable, "-c", LOCK_HOLDER, str(path)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline() == "held\n"
        module, *args = COMMANDS[command]
        proc = run_cli(*args, "--tracking-uri", f"sqlite:///{path}", module=module, cwd=tmp_path)
    finally:
        holder.communicate(timeout=60)  # closes its stdin: it rolls back and exits
    assert proc.returncode == 2, proc.stderr
    (line,) = error_lines(proc)  # no "database is locked" traceback, one line
    assert line.startswith("error: --tracking-uri must be a store that no other process holds locked")
    assert sha256(path) == before
