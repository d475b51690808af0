"""Engines for the two supported backends, configured for durability and one writer at a time.

SQLite: WAL, ``synchronous=FULL`` (a commit that returned survives a power cut), a busy
timeout, ``secure_delete`` (deleted bytes are overwritten with zeros, so an erased key leaves no
copy in the file), and write transactions that start with ``BEGIN IMMEDIATE`` so concurrent
writers queue on the busy handler instead of failing with "database is locked". PostgreSQL:
psycopg 3 and plain commits.

The key vault and the event store share this configuration; the event store never deletes,
so ``secure_delete`` costs it nothing.
"""

from __future__ import annotations

import importlib
import importlib.util
import sqlite3
import time
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import URL, Connection, Engine, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, IntegrityError
from sqlalchemy.pool import StaticPool

from keyvault.errors import VaultConfigurationError as ConfigurationError

__all__ = [
    "BUSY_TIMEOUT_SECONDS",
    "CHECKPOINT_WAIT_SECONDS",
    "WRITE",
    "checkpoint_wal",
    "create_engine",
    "DRIVER_ERRORS",
    "INTEGRITY_ERRORS",
    "driver_message",
    "is_connect_failure",
    "wrap_driver_error",
    "is_postgres",
    "is_sqlite",
]

BUSY_TIMEOUT_SECONDS = 30.0
"""How long an SQLite writer waits for another process's write transaction to end."""

CHECKPOINT_WAIT_SECONDS = 2.0
"""How long `checkpoint_wal` retries, by default, while readers keep the WAL busy."""
_CHECKPOINT_FIRST_PAUSE = 0.002
_CHECKPOINT_MAX_PAUSE = 0.05

WRITE = {"begin_immediate": True}
"""Execution options for a connection that will write: SQLite then begins IMMEDIATE."""

_POSTGRES_ALIASES = ("postgres", "postgresql", "postgresql+psycopg")


def create_engine(url: str | URL | Engine) -> Engine:
    """Return an engine for `url`, configured for shredstore.

    An `Engine` made elsewhere is configured in place (SQLite pragmas and transaction begins).
    """
    if isinstance(url, Engine):
        _configure(url)
        return url
    parsed = _parse(url)
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        return _configure(_sqlite_engine(parsed))
    if backend in _POSTGRES_ALIASES:
        return _configure(_postgres_engine(parsed))
    raise ConfigurationError(
        f"unsupported database {backend!r}: use sqlite:///path.db or "
        "postgresql+psycopg://user@host/dbname"
    )


def is_sqlite(engine: Engine | Connection) -> bool:
    return engine.dialect.name == "sqlite"


def is_postgres(engine: Engine | Connection) -> bool:
    return engine.dialect.name == "postgresql"


def _parse(url: str | URL) -> URL:
    try:
        parsed = make_url(url)
    except ArgumentError:
        # The URL itself is not echoed: it may carry a password.
        raise ConfigurationError(
            "malformed database URL; expected e.g. sqlite:///events.db or "
            "postgresql+psycopg://user@host:5432/dbname"
        ) from None
    if parsed.get_backend_name() in ("postgres", "postgresql"):
        if parsed.get_driver_name() not in ("psycopg", "postgresql", ""):
            raise ConfigurationError(
                f"PostgreSQL driver {parsed.get_driver_name()!r} is not supported; "
                "use postgresql+psycopg://"
            )
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed


def _sqlite_engine(url: URL) -> Engine:
    if url.get_driver_name() not in ("pysqlite", ""):
        raise ConfigurationError("only the standard library's sqlite3 driver is supported")
    options: dict[str, Any] = {"connect_args": {"timeout": BUSY_TIMEOUT_SECONDS}}
    if url.database in (None, "", ":memory:"):
        # One shared connection, or every checkout would see a different empty database.
        options["poolclass"] = StaticPool
        options["connect_args"]["check_same_thread"] = False
    return sa.create_engine(url, **options)


def _postgres_engine(url: URL) -> Engine:
    if importlib.util.find_spec("psycopg") is None:
        raise ConfigurationError("PostgreSQL needs psycopg 3: pip install 'shredstore[postgres]'")
    return sa.create_engine(url, pool_pre_ping=True)


def _configure(engine: Engine) -> Engine:
    if is_sqlite(engine) and not event.contains(engine, "connect", _sqlite_connect):
        event.listen(engine, "connect", _sqlite_connect)
        event.listen(engine, "begin", _sqlite_begin)
        engine.dispose()  # connections opened before the listeners lack the pragmas
    return engine


def _sqlite_connect(dbapi_connection: Any, _record: Any) -> None:
    # Take transaction control away from the sqlite3 module: it would begin DEFERRED
    # transactions itself, and a deferred reader that upgrades to a writer can fail with
    # SQLITE_BUSY without waiting.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute(f"PRAGMA busy_timeout={int(BUSY_TIMEOUT_SECONDS * 1000)}")
        if cursor.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
            _switch_to_wal(cursor)
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA secure_delete=ON")
    finally:
        cursor.close()


def _switch_to_wal(cursor: Any) -> None:
    """Put a new database file in WAL mode. Processes opening the same new file at once race
    for the exclusive lock this needs, and SQLite answers the losers "database is locked"
    without waiting: they retry until the winner's switch is visible."""
    deadline = time.monotonic() + BUSY_TIMEOUT_SECONDS
    while True:
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as error:
            if "locked" not in str(error) or time.monotonic() > deadline:
                raise
            time.sleep(0.01)
            if cursor.execute("PRAGMA journal_mode").fetchone()[0].lower() == "wal":
                return


def _sqlite_begin(connection: Connection) -> None:
    writing = connection.get_execution_options().get("begin_immediate", False)
    connection.exec_driver_sql("BEGIN IMMEDIATE" if writing else "BEGIN")


def checkpoint_wal(engine: Engine, *, wait: float = CHECKPOINT_WAIT_SECONDS) -> bool:
    """On SQLite, copy the WAL into the database file and truncate it; True if it completed.

    With ``secure_delete`` this is what leaves no older copy of a deleted row's page, in the
    WAL or in the database file. It cannot complete while another connection (in any process)
    holds a read transaction or writes: it then retries with short sleeps for up to `wait`
    seconds (never the 30 s busy timeout), and returns False if it still could not: run it
    again later. PostgreSQL: False, at once: old row versions stay in its table files until
    VACUUM FULL (`keyvault.scrub.scrub_tables`), which is no per-erasure cost.
    """
    if not is_sqlite(engine):
        return False
    deadline = time.monotonic() + wait
    pause = _CHECKPOINT_FIRST_PAUSE
    # The driver's connection, in autocommit (see _sqlite_connect): no transaction may be open
    # around a checkpoint, and SQLAlchemy would begin one.
    connection = engine.raw_connection()
    try:
        cursor = connection.cursor()
        cursor.execute("PRAGMA busy_timeout=0")  # the retries below are the only wait
        try:
            while not _checkpointed(cursor):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                time.sleep(min(pause, remaining))
                pause = min(pause * 2, _CHECKPOINT_MAX_PAUSE)
            return True
        finally:
            cursor.execute(f"PRAGMA busy_timeout={int(BUSY_TIMEOUT_SECONDS * 1000)}")
            cursor.close()
    finally:
        connection.close()


def _checkpointed(cursor: Any) -> bool:
    """One TRUNCATE checkpoint; False if a reader or writer kept it from completing."""
    try:
        busy = cursor.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0]
    except sqlite3.OperationalError as error:  # another connection's checkpoint, say
        if "locked" in str(error) or "busy" in str(error):
            return False
        raise
    return int(busy) == 0


def is_connect_failure(error: DBAPIError) -> bool:
    """Whether a driver error means the database could not be reached at all."""
    if error.connection_invalidated:
        return True
    text = str(error.orig).lower()
    if any(sign in text for sign in (
        "connection refused", "could not connect", "unable to open database file",
        "connection failed", "could not translate host name", "server closed the connection",
    )):
        return True
    # Connecting to a database or as a role that does not exist (not "operator does not exist")
    return "does not exist" in text and ('database "' in text or 'role "' in text)


def driver_message(error: DBAPIError) -> str:
    """The first line of the driver's own message: no SQL and no parameter values."""
    text = str(error.orig).strip()
    return text.splitlines()[0] if text else type(error.orig).__name__


def _driver_errors() -> tuple[tuple[type[Exception], ...], tuple[type[Exception], ...]]:
    errors: list[type[Exception]] = [sqlite3.Error]
    integrity: list[type[Exception]] = [IntegrityError, sqlite3.IntegrityError]
    if importlib.util.find_spec("psycopg") is not None:  # PostgreSQL support is an extra
        psycopg = importlib.import_module("psycopg")
        errors.append(psycopg.Error)
        integrity.append(psycopg.IntegrityError)
    return tuple(errors), tuple(integrity)


DRIVER_ERRORS, INTEGRITY_ERRORS = _driver_errors()
"""The drivers' own error classes (raised where a hot path uses the driver's cursor), and the
integrity errors of SQLAlchemy and the drivers."""


def wrap_driver_error(error: Exception) -> DBAPIError:
    """A driver's own error wrapped as SQLAlchemy would, for one classification of both."""
    return DBAPIError(None, None, error)
