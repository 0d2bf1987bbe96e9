"""Opening a store for reading only: the database is checked, through a read-only connection of our
own, before MLflow is given it.

MLflow's SQL store creates its tables, or migrates them, the moment it is constructed. Given another
application's database, an empty file or an older MLflow's store, a command that only reads runs would
write to it. So `check_readable` accepts a SQL database only when MLflow will construct its store there
without a write: it holds every table of MLflow's schema, at the revision the installed MLflow expects.

    SQLite        the file must exist; it is opened with `?mode=ro` (SQLite itself refuses a write)
    PostgreSQL    a session with `default_transaction_read_only=on` (the server refuses a write)
    MySQL, MSSQL  the same queries, only SELECTs, in a transaction that is rolled back
    http(s)       the server owns its schema: it only has to answer
"""

import sqlite3
from pathlib import Path

from lstm_exp.errors import ConfigError
from lstm_exp.record.store import check_reachable
from lstm_exp.record.store_locks import LOCKED

KEY = "--tracking-uri"


def check_readable(uri: str, timeout_s: float) -> None:
    """Refuses (ConfigError, nothing written) a store whose opening by MLflow would write to it.

    Args:
        uri: an absolute tracking URI (`store.default_store_uri` made a relative SQLite path absolute).
        timeout_s: bound on reaching a server or a database.
    """
    if uri.startswith(("http://", "https://")):
        check_reachable(uri, timeout_s)
        return
    if uri.startswith("sqlite:///") and not Path(uri[len("sqlite:///") :]).is_file():
        raise ConfigError(KEY, uri, "an existing MLflow store (no such SQLite file)")
    tables, revisions = _read_schema(uri, timeout_s)
    _check_schema(uri, tables, revisions)


def locked_store_error(uri: str, timeout_s: float) -> ConfigError:
    """The one line for a store another process kept locked while a read-only command waited for it."""
    return ConfigError(KEY, uri, f"a store that no other process holds locked (another process held a "
                       f"lock on it for all of {timeout_s:g} s; retry when it is done)")


def _read_only_engine(uri: str, timeout_s: float):
    import sqlalchemy
    from sqlalchemy.pool import NullPool

    if uri.startswith("sqlite:///"):
        # A `file:` URI with mode=ro: SQLite opens no journal, creates nothing, and refuses any write.
        file_uri = Path(uri[len("sqlite:///") :]).resolve().as_uri() + "?mode=ro"
        return sqlalchemy.create_engine(
            "sqlite://", poolclass=NullPool,
            creator=lambda: sqlite3.connect(file_uri, uri=True, timeout=timeout_s))
    connect_args = {}
    if uri.startswith("postgresql"):
        connect_args = {"options": "-c default_transaction_read_only=on",
                        "connect_timeout": int(max(timeout_s, 1))}
    return sqlalchemy.create_engine(uri, poolclass=NullPool, connect_args=connect_args)


def _read_schema(uri: str, timeout_s: float) -> tuple[set[str], list[str]]:
    """The database's table names and its alembic revisions (none when it has no alembic_version)."""
    import sqlalchemy

    engine = _read_only_engine(uri, timeout_s)
    try:
        with engine.connect() as connection:
            tables = set(sqlalchemy.inspect(connection).get_table_names())
            revisions = []
            if "alembic_version" in tables:
                query = sqlalchemy.text("SELECT version_num FROM alembic_version")
                revisions = [str(row[0]) for row in connection.execute(query)]
            connection.rollback()
    except (sqlalchemy.exc.SQLAlchemyError, sqlite3.Error) as error:
        reason = " ".join(str(getattr(error, "orig", None) or error).split())[:200]
        if LOCKED in reason:  # SQLite waited `timeout_s` for another process's lock, quietly
            raise locked_store_error(uri, timeout_s) from None
        raise ConfigError(KEY, uri, f"an MLflow store that can be read ({reason})") from None
    finally:
        engine.dispose()
    return tables, revisions


def _migrations():
    """MLflow's alembic migrations, as `mlflow db upgrade` applies them."""
    import mlflow.store.db_migrations
    from alembic.script import ScriptDirectory

    return ScriptDirectory(str(Path(mlflow.store.db_migrations.__file__).parent))


def schema_head() -> str:
    """The schema revision the installed MLflow expects (the head of its migrations)."""
    return _migrations().get_current_head()


def mlflow_tables() -> set[str]:
    """Every table MLflow's SQL store checks for before it decides to create its schema."""
    import mlflow.store.db.utils  # noqa: F401  (declares every model on Base)
    from mlflow.store.db.base_sql_model import Base

    return set(Base.metadata.tables)


def _check_schema(uri: str, tables: set[str], revisions: list[str]) -> None:
    import mlflow

    head = schema_head()
    wanted = f"an MLflow store at the schema revision of MLflow {mlflow.__version__} ({head})"
    if not tables:
        raise ConfigError(KEY, uri, f"{wanted}; this database is empty")
    if not revisions:
        shown = ", ".join(sorted(tables)[:5]) + (", ..." if len(tables) > 5 else "")
        raise ConfigError(KEY, uri, f"{wanted}; this database is not an MLflow store (its tables: {shown})")
    if revisions != [head]:
        known = _migrations()
        older = all(_known_revision(known, r) for r in revisions)
        how = ("an older MLflow's schema: after a backup, `mlflow db upgrade <uri>` migrates it" if older
               else "a schema this MLflow does not know: a newer MLflow wrote it")
        raise ConfigError(KEY, uri, f"{wanted}; it is at revision {', '.join(revisions)}, {how}")
    if missing := mlflow_tables() - tables:
        raise ConfigError(KEY, uri, f"{wanted}; tables are missing: {', '.join(sorted(missing))}")


def _known_revision(scripts, revision: str) -> bool:
    try:
        return scripts.get_revision(revision) is not None
    except Exception:  # noqa: BLE001 - alembic raises several kinds for an unknown or malformed id
        return False
