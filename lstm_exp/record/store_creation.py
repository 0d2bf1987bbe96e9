"""A new SQLite store is created whole, or not at all.

MLflow creates a store's tables on its first connection, in some forty migrations. Interrupted (a
full disk, a kill), it leaves the database half-migrated for good: every later run fails on what the
broken migration left behind (``table _alembic_tmp_endpoints already exists``). So a new store is
made under a temporary name beside the database and renamed into place once MLflow has finished;
if anything fails, the temporary file goes and no store is left, so the next run (with space again)
creates it afresh. The caller holds the store's lock (``store_locks.sqlite_file_lock``), so two
processes never create one store at once.
"""

from __future__ import annotations

import os
from pathlib import Path


def create_whole(database: Path) -> None:
    """Creates the MLflow store `database` whole where there is none (no file, or an empty one).

    Raises:
        Exception: what MLflow or SQLite raised while creating it (e.g. ``database or disk is
            full``); nothing is left behind then.
    """
    if database.exists() and database.stat().st_size > 0:
        return
    partial = database.with_name(f".{database.name}.{os.getpid()}.creating")
    try:
        from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

        # The artifact root MLflow gives its Default experiment when a client opens a new store.
        store = SqlAlchemyStore(f"sqlite:///{partial}", "./mlruns")
        store.engine.dispose()  # closes the file before the rename
        os.replace(partial, database)
    finally:
        for left in (partial, partial.with_name(partial.name + "-journal")):
            left.unlink(missing_ok=True)
