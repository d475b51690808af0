"""Engines for the event store, and the one place where shredstore turns driver errors into
its own.

The engines are configured by `keyvault.engine` (WAL, ``synchronous=FULL``, ``BEGIN
IMMEDIATE`` for writes, a busy timeout, ``secure_delete``), not by a copy of it: the vault
lives in the event store's database by default, on the same engine, and an append checks the
vault's rows in its own transaction, so both must be set up alike. Everything else in
`shredstore.storage` imports its engine plumbing from here.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import URL, Connection, Engine, make_url
from sqlalchemy.exc import ArgumentError, IntegrityError

import keyvault.engine
from keyvault.engine import (
    WRITE,
    DriverErrors,
    DriverFailure,
    ask_rows,
    driver_failure,
    driver_rows,
    is_postgres,
    is_sqlite,
    reader,
)
from keyvault.engine import create_async_postgres_engine as _async_postgres_engine
from keyvault.engine import create_engine as _configured_engine
from shredstore.errors import (
    ConfigurationError,
    ImmutableLogError,
    NotInitialisedError,
    StorageError,
    StoreUnavailable,
    vault_configuration_errors,
)

__all__ = [
    "INTEGRITY_ERRORS",
    "WRITE",
    "HeldReads",
    "create_async_postgres_engine",
    "create_engine",
    "create_read_only_engine",
    "ask_rows",
    "driver_rows",
    "is_postgres",
    "is_sqlite",
    "reader",
    "translate_errors",
]


class HeldReads:
    """Connections for reads that are single statements, the last one kept checked out.

    Taking a connection from SQLAlchemy's pool and giving it back costs a short read (an
    aggregate's snapshot, a stream of ten events) a fifth to a third of its time: on
    PostgreSQL the reader's autocommit is also set and reset each time, and statements are
    prepared per connection. Reads that run each statement on its own, without a transaction
    (pages of the log, see `EventLog.after_each_page`), take `connect()` instead: the
    connection of the read before, if no other read has it (taken without waiting; another
    thread meanwhile gets one from the pool, as before). Nothing stays open on it between
    reads: a transaction left open is rolled back, and a read that fails gives the connection
    up (a connection the server dropped fails one read, as a pooled one does). On PostgreSQL
    one left idle for `keyvault.engine.IDLE_CHECK_SECONDS` is pinged before it is used again,
    as the pool checks one, and replaced if the server dropped it. In a process forked after
    it was taken, it is left alone (never used or closed: it is the parent's) and another is
    taken.

    Not for psycopg's async driver (`shredstore.aio`), whose connections belong to the task
    that runs them.
    """

    __slots__ = ("_closed", "_engine", "_forks", "_held", "_lock", "_pings", "_used")

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._lock = threading.Lock()
        self._held: Connection | None = None
        self._forks = _FORKS[0]
        """How many forks this process is from the one that took the held connection (a
        count kept at each fork, where `os.getpid` would be a system call per read)."""
        self._closed = False
        self._pings = is_postgres(engine)
        self._used = 0.0
        """When the held connection was last given back (PostgreSQL's idle check)."""

    @staticmethod
    def holds(engine: Engine) -> bool:
        """Whether reads on `engine` keep a connection: an SQLite file (an in-memory database
        already shares its one connection), or PostgreSQL through the blocking driver."""
        if is_sqlite(engine):
            return engine.url.database not in (None, "", ":memory:")
        return is_postgres(engine) and not engine.dialect.is_async

    @contextlib.contextmanager
    def connect(self) -> Iterator[Connection]:
        """A connection for one read; the held one where it is free."""
        if self._closed or not self._lock.acquire(blocking=False):
            with self._engine.connect() as conn:
                yield conn
            return
        try:
            conn = self._take()
            try:
                yield conn
            except BaseException as error:
                self._release()
                failure = driver_failure(error)
                if failure is not None and failure.unreachable:
                    # The server went away (a restart, a failover): the pool's idle
                    # connections went with it. One read fails, as it would on a pooled
                    # connection, and the next ones connect anew.
                    self._engine.pool.dispose()
                raise
            if conn.in_transaction():
                conn.rollback()
            if self._closed:
                self._release()
            self._used = time.monotonic()
        finally:
            self._lock.release()

    def _take(self) -> Connection:
        held = self._held
        if held is not None and self._forks != _FORKS[0]:
            _FORKED.append(held)  # the parent's: kept from the garbage collector, never closed
            held = self._held = None
        if held is not None and not (held.closed or held.invalidated) and self._idle():
            driver = held.connection.dbapi_connection
            try:
                if driver is None:
                    raise ConnectionError("no driver connection")
                self._engine.dialect.do_ping(driver)
            except Exception:  # noqa: BLE001 (any failure of a ping: the server dropped it)
                held.invalidate()
        if held is None or held.closed or held.invalidated:
            if held is not None:
                held.close()
            self._forks = _FORKS[0]
            held = self._held = self._engine.connect()
        return held

    def _idle(self) -> bool:
        """Whether the held connection (on PostgreSQL) was left idle long enough to be
        checked first."""
        return (self._pings
                and time.monotonic() - self._used >= keyvault.engine.IDLE_CHECK_SECONDS)

    def _release(self) -> None:
        held, self._held = self._held, None
        if held is not None and self._forks == _FORKS[0]:
            held.close()

    def close(self) -> None:
        """Give the held connection back to the pool (now if it is free, else when the read
        that has it ends); later reads take theirs from the pool."""
        self._closed = True
        if self._lock.acquire(blocking=False):
            try:
                self._release()
            finally:
                self._lock.release()


_FORKED: list[Connection] = []
"""Held connections inherited through a fork: a child must neither use nor close them."""
_FORKS = [0]
"""Forks since the interpreter started, counted in each child (`HeldReads`)."""


def _count_fork() -> None:
    _FORKS[0] += 1


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_count_fork)


def translate_errors(database: str = "the database") -> DriverErrors:
    """A context manager that raises the database driver's errors in its block as shredstore's.

    The one place where that happens, for SQLAlchemy's wrapped errors and the drivers' own
    (from the hot paths that use the driver's cursor) alike: `ImmutableLogError` when the
    database refused to change the append-only log (its triggers), `StoreUnavailable` when
    `database` cannot be reached, `StorageError` for anything else it failed or refused. The
    message carries the driver's first line, never SQL or values; the driver's error is the
    cause. One instance serves every block (it holds no state).
    """
    if database == _DATABASE:
        return _ERRORS
    return DriverErrors(lambda failure: _storage_error(database, failure))


def _storage_error(database: str, failure: DriverFailure) -> StorageError:
    if "append-only" in failure.message:
        return ImmutableLogError(failure.message)
    if failure.unreachable:
        return StoreUnavailable(f"cannot reach {database}: {failure.message}")
    return StorageError(f"{database} refused: {failure.message}")


_DATABASE = "the database"
_ERRORS = DriverErrors(lambda failure: _storage_error(_DATABASE, failure))


def _integrity_errors() -> tuple[type[Exception], ...]:
    errors: list[type[Exception]] = [IntegrityError, sqlite3.IntegrityError]
    if importlib.util.find_spec("psycopg") is not None:  # PostgreSQL support is an extra
        errors.append(importlib.import_module("psycopg").IntegrityError)
    return tuple(errors)


INTEGRITY_ERRORS = _integrity_errors()
"""The integrity errors of SQLAlchemy and the drivers: a unique key already taken (an append
tells a retry or a duplicate event id by them)."""


def create_engine(url: str | URL | Engine) -> Engine:
    """Return an engine for `url`, configured for the event store (an `Engine` made elsewhere
    is configured in place)."""
    with vault_configuration_errors():
        return _configured_engine(url)


def create_async_postgres_engine(url: str | URL) -> Any:
    """An `AsyncEngine` for a PostgreSQL `url` on psycopg's async driver, configured as the
    event store's engines are (`keyvault.engine.create_async_postgres_engine`)."""
    with vault_configuration_errors():
        return _async_postgres_engine(url)


def create_read_only_engine(url: str | URL) -> tuple[Engine, str | None]:
    """An engine that reads `url`'s database and can write nothing, and a note on how.

    For auditors' copies on read-only files and mounts. SQLite: the file is opened with
    ``mode=ro``; where even that cannot work (a WAL database whose ``-shm`` file cannot be
    created beside it, as on a read-only mount), with ``immutable=1``, which reads the file as
    it is and ignores a ``-wal`` file beside it: the note then says so (copy a database after
    a checkpoint, as `shredstore scrub` or closing every writer leaves it). PostgreSQL: every
    transaction is READ ONLY (a replica or a read-only role works too).
    """
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise ConfigurationError("malformed database URL") from None
    if parsed.get_backend_name() != "sqlite":
        engine = create_engine(parsed)
        event.listen(engine, "connect", _read_only_session)
        return engine, None
    database = parsed.database
    if database in (None, "", ":memory:") or database.startswith("file:"):
        raise ConfigurationError("a read-only store needs an SQLite file path")
    path = Path(database).resolve()
    if not path.is_file():
        raise NotInitialisedError(f"no event store at {path}")
    note = None
    uri = f"file:{path}?mode=ro"
    try:
        probe = sqlite3.connect(uri, uri=True)
        try:
            probe.execute("SELECT 1 FROM sqlite_master LIMIT 1")
        finally:
            probe.close()
    except sqlite3.Error:
        uri = f"file:{path}?immutable=1"
        note = ("read as an immutable file (a read-only mount): changes in a -wal file beside "
                "it, if any, are not seen")
    engine = sa.create_engine(f"sqlite:///{uri}&uri=true",
                              connect_args={"timeout": 30.0})
    return create_engine(engine), note


def _read_only_session(dbapi_connection: Any, _record: Any) -> None:
    with dbapi_connection.cursor() as cursor:
        cursor.execute("SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY")
    dbapi_connection.commit()
