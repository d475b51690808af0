"""Engines for the event store, and the one place where shredstore turns driver errors into
its own.

The engines are configured by `keyvault.engine` (WAL, ``synchronous=FULL``, ``BEGIN
IMMEDIATE`` for writes, a busy timeout, ``secure_delete``), not by a copy of it: the vault
lives in the event store's database by default, on the same engine, and an append checks the
vault's rows in its own transaction, so both must be set up alike. Everything else in
`shredstore.storage` imports its engine plumbing from here.
"""

from __future__ import annotations

import importlib
import importlib.util
import sqlite3
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import URL, Engine, make_url
from sqlalchemy.exc import ArgumentError, IntegrityError

from keyvault.engine import (
    WRITE,
    DriverErrors,
    DriverFailure,
    HeldReads,
    ask_rows,
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
