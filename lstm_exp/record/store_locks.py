"""Another process holding a SQLite store: waits that are bounded and quiet, then one line.

SQLite serves one writer at a time; MLflow answers a conflict with "database is locked" (and logs a
traceback for each). `retry_locked` waits those out for a bounded time, `sqlite_file_lock` lets the
lstm_exp processes of a machine take turns where two writers would collide, and `locked_store_error`
is the one line when the wait runs out.
"""

import contextlib
import fcntl
import logging
import time
from collections.abc import Callable
from pathlib import Path

from lstm_exp.errors import ConfigError

LOCKED = "database is locked"  # SQLite's error while another process holds a conflicting lock
LOCK_WAIT_S = 15.0  # the schema's default tracking.timeout_s, for calls made without a config


class StoreLocked(RuntimeError):
    """Another process kept the SQLite store locked for longer than the wait allowed."""


class _LockRetriesFilter(logging.Filter):
    """Drops MLflow's traceback for "database is locked": `retry_locked` waits those out, and says so
    in one line if the lock outlasts the wait."""

    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage() + (str(record.exc_info[1]) if record.exc_info else "")
        return LOCKED not in text


_QUIET_LOCK_RETRIES = _LockRetriesFilter()


def quiet_lock_retries() -> None:
    """Silences MLflow's log of each lock conflict that `retry_locked` retries (idempotent)."""
    logging.getLogger("mlflow.store.db.utils").addFilter(_QUIET_LOCK_RETRIES)


def retry_locked(action: Callable, within_s: float = LOCK_WAIT_S, transient: tuple[str, ...] = ()):
    """Runs `action`, retrying while another process holds the SQLite store locked, for `within_s`.

    Each attempt may itself wait (MLflow sets SQLite's busy timeout to 20 s), so the whole can last
    up to that much longer than `within_s`. `transient` names other errors worth retrying.

    Raises:
        StoreLocked: the store was still locked after `within_s`.
    """
    deadline = time.monotonic() + within_s
    attempt = 0
    while True:
        try:
            return action()
        except Exception as error:  # mlflow wraps sqlalchemy's OperationalError in several ways
            locked = LOCKED in str(error)
            if not locked and not any(text in str(error) for text in transient):
                raise
            if time.monotonic() >= deadline:
                if locked:
                    raise StoreLocked(f"still locked by another process after {within_s:g} s") from None
                raise
        time.sleep(min(0.05 * 2**attempt, 1.0, max(deadline - time.monotonic(), 0.0)))
        attempt += 1


def locked_store_error(uri: str, key: str, timeout_s: float) -> ConfigError:
    """The one line for a store another process kept locked for all of `timeout_s`."""
    return ConfigError(key, uri, (
        f"a store that no other process holds locked (another process held a lock on it for all of "
        f"tracking.timeout_s={timeout_s:g} s; retry when it is done, or raise tracking.timeout_s)"))


@contextlib.contextmanager
def sqlite_file_lock(uri: str, timeout_s: float):
    """For a SQLite store, an exclusive ``flock`` on ``<database>.lock``; nothing for a server.

    The lstm_exp processes of a machine take turns through it where two writers would collide: the
    first opening of a fresh database (two processes migrating it at once both fail and can leave it
    half-migrated for good) and a run's end (its read-then-write must not interleave with another's).
    The lock goes with the open file, so a holder that dies releases it; one that was stopped (Ctrl-Z)
    or wedged keeps it, so it is waited for at most `timeout_s`, quietly.

    Raises:
        StoreLocked: another process held the lock for all of `timeout_s`.
    """
    if not uri.startswith("sqlite:///"):
        yield
        return
    lock = Path(uri[len("sqlite:///") :] + ".lock")
    lock.parent.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + timeout_s
    with lock.open("a") as handle:  # released when the file closes
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise StoreLocked(f"{lock} held by another process for {timeout_s:g} s") from None
                time.sleep(0.05)
        yield
