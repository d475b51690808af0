"""Engines for the event store: the key vault's configuration, with shredstore's errors.

See `keyvault.engine` for what is configured and why (WAL, synchronous=FULL, BEGIN IMMEDIATE
for writes, secure_delete).
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import URL, Engine, make_url
from sqlalchemy.exc import ArgumentError

from keyvault.engine import WRITE, is_postgres, is_sqlite
from keyvault.engine import create_engine as _create_engine
from keyvault.errors import VaultConfigurationError
from shredstore.errors import ConfigurationError, NotInitialisedError

__all__ = ["WRITE", "create_engine", "create_read_only_engine", "is_postgres", "is_sqlite"]


def create_engine(url: str | URL | Engine) -> Engine:
    """Return an engine for `url`, configured for the event store."""
    try:
        return _create_engine(url)
    except VaultConfigurationError as error:
        raise ConfigurationError(str(error)) from None


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
