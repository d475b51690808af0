"""Engines for the two supported backends, configured for durability and one writer at a
time; and the one place where keyvault turns driver errors into its own.

SQLite: WAL, ``synchronous=FULL`` (a commit that returned survives a power cut), a busy
timeout, ``secure_delete`` (deleted bytes are overwritten with zeros, so an erased key leaves no
copy in the file), and write transactions that start with ``BEGIN IMMEDIATE`` so concurrent
writers queue on the busy handler instead of failing with "database is locked". PostgreSQL:
psycopg 3 and plain commits.

The event store (`shredstore.storage.engine`) opens its engines with this configuration, not a
copy of it: by default the vault lives in the event store's database, on the same engine, and
an append checks the vault's rows inside its own transaction, so both must begin transactions
alike and keep ``secure_delete`` on for the file that holds the keys. The event store never
deletes, so ``secure_delete`` costs it nothing.

Driver errors are classified here for both packages (`driver_failure`: the driver's first
line, and whether the database could not be reached); `translate_errors` raises them as
keyvault's errors, and shredstore raises them as its own through the same `DriverErrors`.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import importlib.util
import os
import sqlite3
import threading
import time
import weakref
from collections.abc import Callable, Iterator, Sequence
from types import TracebackType
from typing import Any, Literal, NamedTuple

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import URL, Connection, Engine, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError
from sqlalchemy.pool import Pool, StaticPool

from keyvault.errors import VaultConfigurationError as ConfigurationError
from keyvault.errors import VaultStorageError, VaultUnavailable

__all__ = [
    "BUSY_TIMEOUT_SECONDS",
    "CHECKPOINT_WAIT_SECONDS",
    "IDLE_CHECK_SECONDS",
    "WRITE",
    "DriverErrors",
    "DriverFailure",
    "HeldReads",
    "Transactions",
    "checkpoint_wal",
    "create_async_postgres_engine",
    "ask_rows",
    "create_engine",
    "driver_failure",
    "driver_rows",
    "driver_message",
    "is_connect_failure",
    "is_postgres",
    "is_sqlite",
    "reader",
    "translate_errors",
]

BUSY_TIMEOUT_SECONDS = 30.0
"""How long an SQLite writer waits for another process's write transaction to end."""

CHECKPOINT_WAIT_SECONDS = 2.0
"""How long `checkpoint_wal` retries, by default, while readers keep the WAL busy."""
_CHECKPOINT_FIRST_PAUSE = 0.002
_CHECKPOINT_MAX_PAUSE = 0.05

WRITE = {"begin_immediate": True}
"""Execution options for a connection that will write: SQLite then begins IMMEDIATE."""

IDLE_CHECK_SECONDS = 5.0
"""A pooled PostgreSQL connection left idle for longer than this is checked with a round trip
before it is handed out again (and replaced if the server dropped it); one in steady use is
not checked: a ping per checkout would be a round trip more on every short transaction. A
connection the server dropped while in use fails its statement once (`VaultUnavailable`, or
shredstore's `StorageError`), and the pool then replaces every connection it made before."""

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


def driver_rows(connection: Connection, sql: str, parameters: Sequence[Any] = ()
                ) -> list[Any]:
    """The rows of driver SQL `sql` as the driver returns them (tuples), run on the driver's
    own cursor in `connection`'s transaction: SQLAlchemy's execution costs several times a
    short query. Driver errors are raised as they are (run it under `translate_errors`)."""
    return ask_rows(connection, sql, parameters)()


def ask_rows(connection: Connection, sql: str, parameters: Sequence[Any] = ()
             ) -> Callable[[], list[Any]]:
    """`driver_rows` in two steps: `sql` is sent now, and the function returned reads its
    rows. Statements sent in between share its round trip where the connection is in psycopg's
    pipeline mode; the rows may also be read after the pipeline ended."""
    cursor = connection.connection.cursor()
    try:
        cursor.execute(sql, tuple(parameters))
    except BaseException:
        cursor.close()
        raise

    def rows() -> list[Any]:
        try:
            return list(cursor.fetchall())
        finally:
            cursor.close()

    return rows


class HeldReads:
    """Connections for short reads, the last one kept checked out.

    Taking a connection from SQLAlchemy's pool and giving it back costs a short read (an
    aggregate's snapshot, a stream of ten events, a subject's key) a fifth to a third of its
    time: on PostgreSQL the reader's autocommit is also set and reset each time, and
    statements are prepared per connection. Reads take `connect()` instead: the connection of
    the read before, if no other read has it (taken without waiting; another thread
    meanwhile gets one from the pool, as before). The event log's pages run each statement
    on its own (see `shredstore.storage.log.EventLog.after_each_page`); the key vault's reads
    (`Transactions.read`) begin and end a transaction on it. Nothing stays open on it
    between reads: a transaction left open is rolled back, and a read that fails gives the
    connection up (a connection the server dropped fails one read, as a pooled one does). On
    PostgreSQL one left idle for `IDLE_CHECK_SECONDS` is pinged before it is used again, as
    the pool checks one, and replaced if the server dropped it. In a process forked after it
    was taken, it is left alone (never used or closed: it is the parent's) and another is
    taken.

    Not for psycopg's async driver (`shredstore.aio`), whose connections belong to the task
    that runs them.
    """

    __slots__ = ("_closed", "_dropped", "_engine", "_forks", "_held", "_lock", "_pings",
                 "_used")

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._lock = threading.Lock()
        self._held: Connection | None = None
        self._forks = _FORKS[0]
        """How many forks this process is from the one that took the held connection (a
        count kept at each fork, where `os.getpid` would be a system call per read)."""
        self._closed = False
        self._dropped = 0
        """`_DROPPED` of the pool when the held connection was taken."""
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
                    # connection, and the next ones connect anew (also where another holder
                    # of the same pool, the appends' beside the reads', holds one).
                    _DROPPED[self._engine.pool] = _DROPPED.get(self._engine.pool, 0) + 1
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
        if held is not None and self._dropped != _DROPPED.get(self._engine.pool, 0):
            held.invalidate()  # taken before the server went away (see `connect`)
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
            self._dropped = _DROPPED.get(self._engine.pool, 0)
            held = self._held = self._engine.connect()
        return held

    def _idle(self) -> bool:
        """Whether the held connection (on PostgreSQL) was left idle long enough to be
        checked first."""
        return (self._pings
                and time.monotonic() - self._used >= IDLE_CHECK_SECONDS)

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


_DROPPED: weakref.WeakKeyDictionary[Pool, int] = weakref.WeakKeyDictionary()
"""How often a holder found each pool's server gone: a connection any holder took before
that is not used again."""
_FORKED: list[Connection] = []
"""Held connections inherited through a fork: a child must neither use nor close them."""
_FORKS = [0]
"""Forks since the interpreter started, counted in each child (`HeldReads`)."""


def _count_fork() -> None:
    _FORKS[0] += 1


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_count_fork)


def reader(engine: Engine) -> Engine:
    """`engine` for transactions that only read. On PostgreSQL each statement then commits on
    its own (autocommit): no ``BEGIN`` and ``COMMIT`` round trips. Nothing is lost by it: at
    PostgreSQL's READ COMMITTED every statement takes its own snapshot anyway. On SQLite the
    engine itself: its read transactions are local calls, and keep one snapshot."""
    if is_postgres(engine):
        return engine.execution_options(isolation_level="AUTOCOMMIT")
    return engine


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
    engine = sa.create_engine(url)
    event.listen(engine, "checkin", _mark_idle)
    event.listen(engine, "checkout", functools.partial(_check_if_idle, engine.dialect))
    return engine


def create_async_postgres_engine(url: str | URL) -> Any:
    """An `AsyncEngine` on psycopg's async driver for a PostgreSQL `url`, configured as
    `create_engine` configures a blocking one. Its ``sync_engine`` runs the vault's (and the
    event store's) synchronous code on the event loop, inside SQLAlchemy's ``greenlet_spawn``:
    each round trip is awaited, no thread is used. Needs greenlet (``sqlalchemy[asyncio]``)."""
    parsed = _parse(url)
    if parsed.get_backend_name() not in _POSTGRES_ALIASES:
        raise ConfigurationError("an async engine is made for PostgreSQL URLs only")
    if importlib.util.find_spec("psycopg") is None:
        raise ConfigurationError("PostgreSQL needs psycopg 3: pip install 'shredstore[postgres]'")
    if importlib.util.find_spec("greenlet") is None:
        raise ConfigurationError(
            "async PostgreSQL needs greenlet: pip install 'shredstore[postgres]'")
    from sqlalchemy.ext.asyncio import create_async_engine  # noqa: PLC0415 (needs greenlet)

    engine = create_async_engine(parsed)
    sync = engine.sync_engine
    event.listen(sync, "checkin", _mark_idle)
    event.listen(sync, "checkout", functools.partial(_check_if_idle, sync.dialect))
    _configure(sync)
    return engine


def _mark_idle(_dbapi_connection: Any, record: Any) -> None:
    record.info["idle_since"] = time.monotonic()


def _check_if_idle(dialect: Any, dbapi_connection: Any, record: Any, _proxy: Any) -> None:
    """SQLAlchemy's pre-ping, for connections idle past `IDLE_CHECK_SECONDS` only: raising
    `DisconnectionError` makes the pool replace the connection and try again."""
    since = record.info.get("idle_since")
    if since is None or time.monotonic() - since < IDLE_CHECK_SECONDS:
        return
    try:
        dialect.do_ping(dbapi_connection)
    except Exception as error:
        raise sa.exc.DisconnectionError("the server dropped an idle connection") from error


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
    # On the driver's connection (in autocommit, see _sqlite_connect): SQLAlchemy's execution
    # of a statement costs more than the BEGIN, and every short transaction makes one.
    connection.connection.driver_connection.execute(  # type: ignore[union-attr]
        "BEGIN IMMEDIATE" if writing else "BEGIN")


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
    return _unreachable(error.orig, invalidated=error.connection_invalidated)


def driver_message(error: DBAPIError) -> str:
    """The first line of the driver's own message: no SQL and no parameter values."""
    return _first_line(error.orig)


class DriverFailure(NamedTuple):
    """What a database driver's error says, as far as a caller may be told."""

    message: str
    """The first line of the driver's own message: no SQL and no parameter values."""
    unreachable: bool
    """Whether the database could not be reached at all (down, unknown host, no such database
    or role, a connection lost)."""


def driver_failure(error: BaseException) -> DriverFailure | None:
    """What `error` says if it is a driver error (SQLAlchemy's wrapped `DBAPIError`, or a
    driver's own error from a hot path that uses the driver's cursor); None otherwise."""
    if isinstance(error, DBAPIError):
        return DriverFailure(_first_line(error.orig),
                             _unreachable(error.orig, invalidated=error.connection_invalidated))
    if isinstance(error, _DRIVER_ERRORS):
        return DriverFailure(_first_line(error), _unreachable(error, invalidated=False))
    return None


class DriverErrors:
    """A context manager that raises ``translate(failure)`` for a driver error in its block.

    Each package keeps one (keyvault's is `translate_errors`, shredstore's
    `shredstore.storage.engine.translate_errors`), so that driver errors are classified in
    this one place and turned into each package's own errors in one place each. It holds no
    state: one instance serves every block, nested and in every thread.
    """

    __slots__ = ("_translate",)

    def __init__(self, translate: Callable[[DriverFailure], Exception]) -> None:
        self._translate = translate

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> Literal[False]:
        if error is None:
            return False
        failure = driver_failure(error)
        if failure is None:
            return False
        raise self._translate(failure) from error


def translate_errors(database: str = "the vault's database") -> DriverErrors:
    """keyvault's translation of driver errors: `VaultUnavailable` where `database` cannot be
    reached, `VaultStorageError` where it failed or refused; the message names `database`
    and carries the driver's first line (never SQL or values)."""
    if database == _VAULT_DATABASE:
        return _VAULT_ERRORS
    return DriverErrors(functools.partial(_vault_error, database))


def _vault_error(database: str, failure: DriverFailure) -> VaultStorageError:
    if failure.unreachable:
        return VaultUnavailable(f"cannot reach {database}: {failure.message}")
    return VaultStorageError(f"{database} refused: {failure.message}")


_VAULT_DATABASE = "the vault's database"
_VAULT_ERRORS = DriverErrors(functools.partial(_vault_error, _VAULT_DATABASE))


class Transactions:
    """Short transactions on one engine, with keyvault's translation of driver errors.

    `read()` begins a plain transaction, on a connection kept from one read to the next where
    the engine allows it (`HeldReads`); `statements()` is for reads of statements that each
    stand alone, on the same connection without a transaction; `write()` begins one that
    will write (SQLite: ``BEGIN IMMEDIATE``), or raises `VaultConfigurationError` with
    `refusal` when `read_only`.
    `close()` gives the kept connection back.
    """

    __slots__ = ("_held", "_reader", "_refusal", "_writer", "engine", "read_only")

    def __init__(self, engine: Engine, *, read_only: bool = False, refusal: str = "") -> None:
        self.engine = engine
        self._reader = reader(engine)
        self._held = HeldReads(self._reader) if HeldReads.holds(engine) else None
        self._writer = engine.execution_options(**WRITE)  # made once: cheaper per write
        self.read_only = read_only
        self._refusal = refusal or "this database was opened read-only"

    def _connect(self) -> contextlib.AbstractContextManager[Connection]:
        """The kept connection where reads keep one, else one from the pool."""
        return self._held.connect() if self._held is not None else self._reader.connect()

    @contextlib.contextmanager
    def read(self) -> Iterator[Connection]:
        with _VAULT_ERRORS, self._connect() as conn, conn.begin():
            yield conn

    @contextlib.contextmanager
    def statements(self) -> Iterator[Connection]:
        """A connection (the kept one, as for `read`) for statements that each stand on their
        own, without a transaction around them: each sees one moment, not the same one. For
        the driver's cursor (`driver_rows`); saves a short read its ``BEGIN`` and commit."""
        with _VAULT_ERRORS, self._connect() as conn:
            yield conn

    @contextlib.contextmanager
    def write(self) -> Iterator[Connection]:
        if self.read_only:
            raise ConfigurationError(self._refusal)
        with _VAULT_ERRORS, self._writer.connect() as conn, conn.begin():
            yield conn

    def close(self) -> None:
        """Give back the connection kept for reads; reads still work after, with
        connections from the pool."""
        if self._held is not None:
            self._held.close()


def _unreachable(orig: BaseException | None, *, invalidated: bool) -> bool:
    if invalidated:
        return True
    text = str(orig).lower()
    if any(sign in text for sign in (
        "connection refused", "could not connect", "unable to open database file",
        "file is not a database",  # the URL names a file, but not an SQLite database
        "connection failed", "could not translate host name", "server closed the connection",
    )):
        return True
    # Connecting to a database or as a role that does not exist (not "operator does not exist")
    return "does not exist" in text and ('database "' in text or 'role "' in text)


def _first_line(orig: BaseException | None) -> str:
    text = str(orig).strip()
    return text.splitlines()[0] if text else type(orig).__name__


def _driver_errors() -> tuple[type[Exception], ...]:
    errors: list[type[Exception]] = [sqlite3.Error]
    if importlib.util.find_spec("psycopg") is not None:  # PostgreSQL support is an extra
        errors.append(importlib.import_module("psycopg").Error)
    return tuple(errors)


_DRIVER_ERRORS = _driver_errors()
"""The drivers' own error classes, raised where a hot path uses the driver's cursor."""
