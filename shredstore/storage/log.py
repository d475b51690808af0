"""The append-only event log in SQL: ordered, atomic, chained, and safe under concurrency.

Appends are serialised, one at a time across all processes: ``BEGIN IMMEDIATE`` on SQLite, a
transaction-scoped advisory lock on PostgreSQL. Inside that critical section the log reads its
head, assigns the next positions (so positions have no gaps and increase in commit order) and
extends the hash chain. Because a later append cannot start before an earlier one committed,
a reader that has seen position ``p`` has seen every position before it: tailing
``read_all(after=p)`` never skips an event.

Reads page through the table by key (position, or version within a stream), each page in its
own short transaction, so memory stays constant and no snapshot is held open for long.

Given a `RowAuthenticator` (a store with the master key), every row is stored with its
authenticator, and every row read is checked here, in the one place where stored rows become
`StoredRow` values: whatever reads the log above (streams, `read_all`, subscriptions, subject
scans, audits, exports, erasure footprints) gets only rows as written, or `TamperedError`.

Reads through the subject index return only rows whose own (authenticated) ``subjects``
column names the subject: a forged index entry can hide nothing behind another subject's id
and show no other subject's event.
"""

from __future__ import annotations

import contextlib
import hmac
import itertools
import sqlite3
from collections.abc import Callable, Collection, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NamedTuple, TypeVar, cast
from uuid import UUID

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from keyvault.errors import KeyVaultError, VaultStorageError
from shredstore import expected as _expected
from shredstore.errors import (
    ConfigurationError,
    DuplicateEventError,
    ReadOnlyStoreError,
    ShredstoreError,
    StorageError,
    TamperedError,
    WrongExpectedVersion,
)
from shredstore.expected import ExpectedVersion
from shredstore.storage import schema
from shredstore.storage.authentication import RowAuthenticator
from shredstore.storage.chain import (
    GENESIS,
    LogHead,
    StoredRow,
    altered,
    frame,
    link_hash,
)
from shredstore.storage.engine import (
    INTEGRITY_ERRORS,
    WRITE,
    HeldReads,
    ask_rows,
    driver_rows,
    is_postgres,
    reader,
    translate_errors,
)
from shredstore.storage.formats import (
    Formats,
    Undecodable,
    as_stored,
    as_uuid,
    names,
    parse_subjects,
    subjects_text,
    text_or_undecodable,
)
from shredstore.storage.scope import Scope
from shredstore.storage.statements import (
    IN_LIST,
    POSITION,
    VERSION,
    Statements,
    split_snapshot,
)

__all__ = [
    "AppendResult",
    "EventLog",
    "NewRow",
    "PersonalRow",
    # Re-exported from their own modules until their importers switch to them:
    "Scope",  # shredstore.storage.scope
    "parse_subjects",  # shredstore.storage.formats
    "subjects_text",  # shredstore.storage.formats
    "translate_errors",  # shredstore.storage.engine
]

_LEDGER_LABEL = b"shredstore.ledger-event-id.v1\x00"

_LEDGER_IDS_KEPT = 10_000
"""Subjects whose ledger event ids a log remembers (then it starts afresh)."""

_COPY_FROM = 8
"""Rows from which a PostgreSQL append inserts by COPY (below, a statement costs less)."""

_BEGIN = "BEGIN ISOLATION LEVEL READ COMMITTED"
"""An append's transaction on PostgreSQL (sent by the append, in its pipeline)."""

PAGE_SIZE = 1000
"""Rows fetched per query while reading; bounds the memory of a read."""

_E = schema.EVENTS
_PERSONAL = 9
"""Where the personal column is in a raw row read for its event."""


class NewRow(NamedTuple):
    """An event ready to be stored: everything but its place in the log.

    A named tuple rather than a frozen dataclass: an append builds one per event, and a
    frozen dataclass's `__init__` sets each field through ``object.__setattr__`` (0.96 against
    0.25 µs).
    """

    event_id: UUID
    event_type: str
    schema_version: int
    metadata: str
    payload: str
    personal: str | None = None
    """The sealed personal data, as JSON; None for an event without any."""
    subjects: frozenset[str] = frozenset()
    """The data subjects the event names, for the subject index."""
    sealed_for: frozenset[str] = frozenset()
    """The subjects whose keys sealed its personal data (they must still be active)."""


_Row = TypeVar("_Row")

PageHook = Callable[[Connection], Callable[[], None]]
"""A check run on a page's connection, after its query (`EventLog.after_each_page`): it sends
its queries, and the function it returns reads their answers."""


class PersonalRow(NamedTuple):
    """The parts of a stored row that say whose personal data it holds, and where."""

    position: int
    stream_id: str
    event_type: str
    stored_id: UUID | str
    """The event id as the driver returns it: a UUID, or (SQLite) its 32 hex digits."""
    personal: str | None

    @property
    def event_id(self) -> UUID:
        stored = self.stored_id
        return stored if isinstance(stored, UUID) else UUID(hex=stored)


@dataclass(frozen=True, slots=True)
class AppendResult:
    """Where an append put its events. For an empty batch, `positions` is empty."""

    stream_id: str
    version: int
    """The stream's version after the append: the version of its last event."""
    positions: tuple[int, ...]


class EventLog:
    """The events table of one database."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._reader = reader(engine)
        """The engine for transactions that only read (PostgreSQL: autocommit)."""
        self._reads = HeldReads(self._reader) if HeldReads.holds(engine) else None
        """Where they are held (`HeldReads`): connections for reads of single statements."""
        self._writer = engine.execution_options(**WRITE)
        """The engine for write transactions (SQLite: ``BEGIN IMMEDIATE``): made once, as
        setting the option on each connection costs a fifth of a short transaction."""
        self._ledger_ids: dict[str, UUID] = {}
        self._lock_key: tuple[int, int] | None = None
        postgres = is_postgres(engine)
        self._copies = postgres and not engine.dialect.is_async
        """PostgreSQL's COPY and psycopg's pipeline mode: through the blocking driver only.
        Through psycopg's async driver (`shredstore.aio` on PostgreSQL) statements go one at a
        time: SQLAlchemy's adapted cursor buffers a statement's rows when it is executed,
        which in a pipeline would be before they arrive."""
        self._appender = reader(engine) if self._copies else self._writer
        """The engine for appends. On PostgreSQL in autocommit, the append sending its own
        ``BEGIN`` first thing in its pipeline: psycopg would begin the transaction itself with
        a round trip of its own (it syncs a pipeline after the ``BEGIN`` it sends)."""
        self._appends = HeldReads(self._appender) if HeldReads.holds(engine) else None
        """Where connections are held: the one for appends (and on SQLite, whose appender is
        the writer, for every write), kept between them as reads keep theirs."""
        if postgres and not sa.event.contains(engine, "before_cursor_execute", _not_pipelined):
            sa.event.listen(engine, "before_cursor_execute", _not_pipelined)
        self._sql = Statements("%s" if postgres else "?")
        formats = Formats(postgres=postgres)
        self._raw_row = formats.row
        self._to_row = self._raw_row
        self._authenticator: RowAuthenticator | None = None
        self._page_hook: PageHook | None = None
        self._ledger_key: bytes | None = None
        self.read_only = False
        # Parameters in the formats SQLAlchemy's Uuid and DateTime types use on each backend.
        self._id_param = formats.event_id
        self._time_param = formats.time

    def authenticate(self, authenticator: RowAuthenticator) -> None:
        """From now on, sign every appended row and check every row read (see the module)."""
        self._authenticator = authenticator
        raw_row, check = self._raw_row, authenticator.check

        def checked(raw: Any) -> StoredRow:
            return check(raw_row(raw))

        self._to_row = checked

    def check(self, row: StoredRow) -> StoredRow:
        """`row` if it may be read: its authenticator checked as a read of this table checks
        it (a row that came back from elsewhere, a broker, passes the same check); rows are
        not checked by a store without the master key."""
        return self._authenticator.check(row) if self._authenticator is not None else row

    def after_each_page(self, hook: PageHook) -> None:
        """From now on, run `hook` on the connection of every page read for its events (not
        of verify's raw pages), after the page's query, where the page holds personal data or
        is the first of a read that starts from a snapshot (on PostgreSQL on every page): the
        store checks the vault for new erasures there, where they share the database.

        A page is one statement, which sees one moment of the database without a transaction
        around it (SQLAlchemy's begin and commit cost a short read a quarter of its time); the
        hook's queries run after it, so they see every erasure committed before the page was
        read, and later ones too (a subject erased meanwhile reads as redacted: never the
        other way round).

        The hook sends its queries (on the driver's cursor, see `_pipelined`) and returns a
        function that reads their answers. On PostgreSQL both are pipelined with the page's
        query, and the answers read once the pipeline's one round trip is over."""
        self._page_hook = hook

    def _read_connection(self) -> contextlib.AbstractContextManager[Connection]:
        """A connection for a read of single statements: the held one where reads hold one
        (`HeldReads`), else one from the pool."""
        return self._reads.connect() if self._reads is not None else self._reader.connect()

    def close(self) -> None:
        """Give back the connections held for reads and appends (`HeldReads`); both still
        work after, with connections from the pool."""
        for held in (self._reads, self._appends):
            if held is not None:
                held.close()

    def has_authenticated_rows(self) -> bool:
        """Whether any row carries an authenticator (a store with the master key wrote it)."""
        with translate_errors(), self._reader.connect() as conn, conn.begin():
            return conn.execute(sa.select(_E.c.position).where(_E.c.mac.is_not(None))
                                .limit(1)).first() is not None

    def is_installed(self) -> bool:
        """Whether the events table exists (an SQLite file is not created to find out)."""
        url = self._engine.url
        database = url.database
        if (url.get_backend_name() == "sqlite" and database not in (None, "", ":memory:")
                and not database.startswith("file:") and not Path(database).exists()):
            return False
        with translate_errors(), self._engine.connect() as conn:
            return sa.inspect(conn).has_table(schema.EVENTS.name)

    def install(self) -> None:
        """Create the table and its immutability triggers if missing."""
        with translate_errors(), self._write() as conn:
            schema.install(conn)
            self._load_settings(conn)

    def open_read_only(self) -> None:
        """Use the tables as they are and never write to them (appends raise
        `ConfigurationError`): for a database on a read-only file, mount or replica."""
        self.read_only = True
        with translate_errors(), self._reader.connect() as conn, conn.begin():
            if not sa.inspect(conn).has_table(schema.SETTINGS.name):
                raise ConfigurationError(
                    "this database holds no event store of this format (or it was never "
                    "initialised): a read-only store cannot create one")
            self._load_settings(conn)

    def _load_settings(self, conn: Connection) -> None:
        if is_postgres(conn):
            self._lock_key = schema.table_lock_key(conn)
        self._ledger_ids.clear()
        self._ledger_key = bytes(conn.execute(
            sa.select(schema.SETTINGS.c.value)
            .where(schema.SETTINGS.c.name == schema.LEDGER_KEY)).scalar_one())

    def ledger_event_id(self, subject_id: str) -> UUID:
        """The event id of `subject_id`'s entry in the erasure ledger: the same for every
        erasure of the subject in this store, and a keyed hash of its id (HMAC-SHA256 under
        the random key in `shredstore_settings`, `schema.LEDGER_KEY`), so that a copy of the id
        outside the store names no one to whoever hashes candidate ids."""
        known = self._ledger_ids.get(subject_id)
        if known is not None:  # every append asks for each subject it seals for
            return known
        if self._ledger_key is None:
            raise StorageError("the event log is not installed: open it through EventStore")
        digest = hmac.digest(self._ledger_key, _LEDGER_LABEL + subject_id.encode(), "sha256")
        event_id = UUID(bytes=digest[:16], version=4)
        if len(self._ledger_ids) >= _LEDGER_IDS_KEPT:
            self._ledger_ids.clear()
        self._ledger_ids[subject_id] = event_id
        return event_id

    def in_ledger(self, connection: Connection | None, subject_ids: Collection[str]
                  ) -> list[str]:
        """The subjects among `subject_ids` that have an erasure ledger entry, read in the
        caller's transaction (or a short one of its own): found by their entries' event ids,
        through the unique index."""
        if connection is None:
            with translate_errors(), self._reader.connect() as conn, conn.begin():
                return self.in_ledger(conn, subject_ids)
        return self.ask_in_ledger(connection, subject_ids)()

    def ask_in_ledger(self, connection: Connection, subject_ids: Collection[str]
                      ) -> Callable[[], list[str]]:
        """`in_ledger` in two steps: the queries are sent now, in the caller's transaction,
        and the function returned reads their answer. Queries sent in between share their
        round trip where the connection is in psycopg's pipeline mode (an append's guards)."""
        ids = {self.ledger_event_id(subject): subject for subject in subject_ids}
        batch = list(ids)
        cursors: list[Any] = []  # the driver's, one per statement (each holds its answer)
        try:
            for start in range(0, len(batch), IN_LIST):
                part = batch[start:start + IN_LIST]
                cursors.append(connection.connection.cursor())
                cursors[-1].execute(self._sql.event_ids_among(len(part)),
                                    tuple(self._id_param(event_id) for event_id in part))
        except BaseException:
            for cursor in cursors:
                cursor.close()
            raise

        def answer() -> list[str]:
            found: list[Any] = []
            try:
                for cursor in cursors:
                    found += cursor.fetchall()
            finally:
                for cursor in cursors:
                    cursor.close()
            stored = (as_uuid(value) for (value,) in found)
            return sorted(ids[event_id] for event_id in stored if event_id in ids)

        return answer

    def tail(self, stream_id: str, connection: Connection | None = None
             ) -> tuple[int, int, UUID] | None:
        """(version, position, event id) of the stream's last event, None if it has none;
        read in `connection`'s transaction if given."""
        if connection is None:
            with translate_errors(), self._reader.connect() as conn, conn.begin():
                return self.tail(stream_id, conn)
        return self.ask_tail(stream_id, connection)()

    def ask_tail(self, stream_id: str, connection: Connection
                 ) -> Callable[[], tuple[int, int, UUID] | None]:
        """`tail` in `connection`'s transaction, in two steps: the query is sent now and the
        function returned reads its answer (see `ask_in_ledger`)."""
        rows = ask_rows(connection, self._sql.tail, (stream_id,))

        def answer() -> tuple[int, int, UUID] | None:
            found = rows()
            last = found[0] if found else None
            return None if last is None else (int(last[0]), int(last[1]), as_uuid(last[2]))

        return answer

    def tail_since(self, stream_id: str, version: int, limit: int
                   ) -> list[tuple[int, int, UUID, frozenset[str]]]:
        """(version, position, event id, subjects) of the stream's events from `version` on
        (included), at most `limit` + 1 of them."""
        with translate_errors(), self._reader.connect() as conn, conn.begin():
            rows = conn.exec_driver_sql(self._sql.tail_since,
                                        (stream_id, version, limit + 2)).fetchall()
        return [(int(v), int(p), as_uuid(e), parse_subjects(s)) for v, p, e, s in rows]

    def ledger_row(self, subject_id: str) -> StoredRow | None:
        """The subject's erasure ledger entry (by its keyed event id), checked as every read;
        None if the ledger holds none."""
        with translate_errors(), self._reader.connect() as conn, conn.begin():
            raw = conn.exec_driver_sql(
                self._sql.by_event_id,
                (self._id_param(self.ledger_event_id(subject_id)),)).first()
        return self._to_row(raw) if raw is not None else None

    def append(
        self,
        stream_id: str,
        rows: Sequence[NewRow] | Callable[[Connection], Sequence[NewRow]],
        *,
        expected_version: int | ExpectedVersion,
        before_insert: Callable[[Connection], None] | None = None,
        after_insert: Callable[[Connection, AppendResult], None] | None = None,
    ) -> AppendResult:
        """Store `rows` at the end of `stream_id`, all or nothing.

        `before_insert` runs inside the append's transaction once it holds the log, before
        the rows are written (a guard: what it raises is raised after the version check),
        and `after_insert` just after, with the result; whatever either raises aborts the
        append. `rows` may be a function of that
        transaction instead, called first thing once the append holds the log (so whatever
        else it writes commits with the rows, or not at all; the erasure of a key and its
        ledger entry, for one): an event id it returns that is already stored is then an
        error, not a retry (`DuplicateEventError`).

        Raises WrongExpectedVersion if the stream is not as expected, DuplicateEventError if
        an event id is already stored other than as this very append. A retry of an append
        that did commit (same event ids, same stream, same place) returns the stored result.
        """
        after = None if after_insert is None else (
            lambda conn, results: after_insert(conn, results[0]))
        (result,) = self.append_many([(stream_id, rows, expected_version)],
                                     before_insert=before_insert, after_insert=after)
        return result

    def append_many(
        self,
        batches: Sequence[tuple[str, Sequence[NewRow] | Callable[[Connection], Sequence[NewRow]],
                                int | ExpectedVersion]],
        *,
        before_insert: Callable[[Connection], None] | None = None,
        after_insert: Callable[[Connection, list[AppendResult]], None] | None = None,
    ) -> list[AppendResult]:
        """Store each (stream id, rows, expected version) of `batches` at the end of its
        stream, in one transaction: all or nothing, positions in the order given. As `append`
        for each (`after_insert` gets the results in that order); a stream may appear once.
        """
        streams = [stream_id for stream_id, _, _ in batches]
        if len(set(streams)) != len(streams):
            raise ConfigurationError("a stream can appear only once in one append")
        if self._authenticator is not None and any(
                rows or callable(rows) for _, rows, _ in batches):
            self._authenticator.ready()
        try:
            with translate_errors(), self._write(self._appender) as conn:
                return self._append(conn, batches, before_insert=before_insert,
                                    after_insert=after_insert)
        except _RetryCheck as check:
            if any(callable(rows) for _, rows, _ in batches):
                raise DuplicateEventError(
                    "an event id of this append is already stored") from None
            previous = [self.previous_append(stream_id,
                                             [(row.event_id, row.event_type) for row in rows],
                                             expected_version=expected)
                        if rows else AppendResult(stream_id, self.stream_version(stream_id), ())
                        for stream_id, rows, expected in batches
                        if not callable(rows)]  # every one: a function's rows raised above
            if all(result is not None for result in previous):
                return cast("list[AppendResult]", previous)
            if check.version_mismatch is not None:
                raise check.version_mismatch from None
            raise DuplicateEventError(
                "an event id of this batch is already stored, in another stream or place; "
                "event ids must be unique"
            ) from None

    def _append(
        self,
        conn: Connection,
        batches: Sequence[tuple[str, Any, int | ExpectedVersion]],
        *,
        before_insert: Callable[[Connection], None] | None,
        after_insert: Callable[[Connection, list[AppendResult]], None] | None,
    ) -> list[AppendResult]:
        # The driver's own cursor, in the transaction SQLAlchemy began: per statement,
        # SQLAlchemy's execution path costs more than the statement on this hot path.
        cursor = conn.connection.cursor()
        try:
            results = self._append_on(cursor, conn, batches, before_insert=before_insert,
                                      last=after_insert is None)
        finally:
            cursor.close()
        if after_insert is not None and any(result.positions for result in results):
            after_insert(conn, results)
        return results

    def _append_on(
        self,
        cursor: Any,
        conn: Connection,
        batches: Sequence[tuple[str, Any, int | ExpectedVersion]],
        *,
        before_insert: Callable[[Connection], None] | None,
        last: bool,
    ) -> list[AppendResult]:
        # On PostgreSQL the statements go out pipelined: BEGIN, the lock, the head read and
        # the guards in one round trip; then the inserts and (where nothing else is to be
        # written: `last`) COMMIT in the next, after which the transaction's own commit has
        # nothing left to do. A batch sends its index entries there instead, and its rows by
        # COPY once the pipeline ended. SQLite's statements are calls into the library:
        # nothing to save.
        pipelined = self._pipelines(batches)
        try:
            with self._pipelined(conn) if pipelined else contextlib.nullcontext():
                if self._copies:
                    cursor.execute(_BEGIN)  # the append's engine is in autocommit
                if self._lock_key is not None:
                    # A statement of its own: in READ COMMITTED a statement's snapshot is taken
                    # before a lock inside it is granted, so the reads below must come after.
                    cursor.execute(self._sql.lock, self._lock_key)
                batches = [(stream_id, rows(conn) if callable(rows) else rows, expected)
                           for stream_id, rows, expected in batches]
                # Each stream's version and the log's head, a statement each after the lock.
                answers = self._ask_versions(cursor, conn, [stream for stream, _, _ in batches])
                writes = any(rows for _, rows, _ in batches)
                refused = self._guard(before_insert, conn) if writes else None
                found = [answer() for answer in answers]
                versions = [(row[0] or 0) if row is not None else 0 for row in found]
                for (stream_id, _, expected), current in zip(batches, versions, strict=True):
                    if not _expected.satisfied(expected, current):
                        mismatch = WrongExpectedVersion(stream_id, expected=expected,
                                                        actual=current or None)
                        if writes:
                            raise _RetryCheck(mismatch)
                        raise mismatch
                if refused is not None:
                    raise refused
                results, params, index = self._placed(batches, versions, found[0])
                copied = pipelined and len(params) >= _COPY_FROM
                if copied and index:
                    # The index entries in one statement of two arrays, in the pipeline.
                    cursor.execute(self._sql.insert_subject_arrays,
                                   ([subject for subject, _ in index], [at for _, at in index]))
                elif params and not copied:
                    self._insert(cursor, params, index, copy=not pipelined)
                    if pipelined and last:
                        cursor.execute("COMMIT")
        except INTEGRITY_ERRORS:
            if not pipelined:
                raise
            raise _RetryCheck(None) from None  # the inserts' error, reported on leaving
        if copied:  # a batch's rows by COPY, which a pipeline cannot hold
            self._insert(cursor, params, [], copy=True)
        return results

    def _placed(self, batches: Sequence[tuple[str, Sequence[NewRow], Any]], versions: list[int],
                head: Any) -> tuple[list[AppendResult], list[tuple[Any, ...]],
                                    list[tuple[str, int]]]:
        """Each batch's result, and the insert parameters and index entries of its rows,
        placed after the log's `head` row (None for an empty log) and each stream's version."""
        position = head[1] if head is not None else 0
        prev_hash = bytes(head[2]) if head is not None else GENESIS
        results: list[AppendResult] = []
        params: list[tuple[Any, ...]] = []
        index: list[tuple[str, int]] = []
        for (stream_id, rows, _), current in zip(batches, versions, strict=True):
            results.append(AppendResult(stream_id, current + len(rows), tuple(
                range(position + 1, position + 1 + len(rows)))))
            if not rows:
                continue
            more, entries = self._new_rows(stream_id, rows, current, position, prev_hash)
            params += more
            index += entries
            position += len(rows)
            prev_hash = more[-1][-1]  # the last row's chain hash
        return results, params, index

    def _ask_versions(self, cursor: Any, conn: Connection, stream_ids: list[str]
                      ) -> list[Callable[[], Any]]:
        """Each stream's (version, head position, head hash) row asked for (None for an empty
        log): the queries sent now, each answer read by the function returned for it (in a
        pipeline, they and the guards share one round trip)."""
        cursors = [cursor, *(conn.connection.cursor() for _ in stream_ids[1:])]
        for each, stream_id in zip(cursors, stream_ids, strict=True):
            each.execute(self._sql.version_and_head, (stream_id,))

        def answer(each: Any) -> Callable[[], Any]:
            def read() -> Any:
                try:
                    return each.fetchone()
                finally:
                    if each is not cursor:
                        each.close()
            return read

        return [answer(each) for each in cursors]

    def _insert(self, cursor: Any, params: list[tuple[Any, ...]], index: list[tuple[str, int]],
                *, copy: bool) -> None:
        """The rows and their index entries written: on PostgreSQL outside a pipeline (a large
        batch) by COPY, a third of the time per row of a multi-row insert."""
        copy = copy and self._copies
        try:
            if copy:
                self._copy(cursor, self._sql.copy_events, params)
            else:
                cursor.executemany(self._sql.insert, params)
        except INTEGRITY_ERRORS:
            raise _RetryCheck(None) from None
        if index and copy:
            self._copy(cursor, self._sql.copy_subjects, index)
        elif index:
            cursor.executemany(self._sql.insert_subject, index)

    @staticmethod
    def _guard(before_insert: Callable[[Connection], None] | None, conn: Connection
               ) -> Exception | None:
        """Run the append's guard (a refusal it raises is returned, to be raised after the
        version check: a stale expected version is reported first, as ever)."""
        if before_insert is None:
            return None
        try:
            before_insert(conn)
        except (StorageError, VaultStorageError):
            raise  # the database failed: not a refusal
        except (ShredstoreError, KeyVaultError) as refusal:
            return refusal
        return None

    def _new_rows(self, stream_id: str, rows: Sequence[NewRow], current: int, position: int,
                  prev_hash: bytes) -> tuple[list[tuple[Any, ...]], list[tuple[str, int]]]:
        """The rows' insert parameters (each framed once, signed and chained) and their
        subject index entries."""
        recorded_at = datetime.now(UTC)
        stored_at = self._time_param(recorded_at)
        id_param = self._id_param
        sign = self._authenticator.sign if self._authenticator is not None else None
        params: list[tuple[Any, ...]] = []
        index: list[tuple[str, int]] = []
        for offset, row in enumerate(rows, start=1):
            version = current + offset
            subjects = subjects_text(row.subjects)
            # Framed once, for both the authenticator and the chain.
            content = frame(stream_id, version, row.event_id, row.event_type,
                            row.schema_version, recorded_at, row.metadata, row.payload,
                            row.personal, subjects)
            mac = sign(position + offset, content) if sign is not None else None
            digest = link_hash(prev_hash, content, mac)
            params.append((position + offset, stream_id, version, id_param(row.event_id),
                           row.event_type, row.schema_version, stored_at, row.metadata,
                           row.payload, row.personal, subjects, mac, prev_hash, digest))
            index.extend((subject, position + offset) for subject in row.subjects)
            prev_hash = digest
        return params, index

    def _pipelines(self, batches: Sequence[tuple[str, Any, Any]]) -> bool:
        """Whether an append of `batches` is pipelined: on PostgreSQL, unless the rows come
        from a function (which may run SQLAlchemy's statements). A batch large enough to go
        by COPY is pipelined up to its inserts."""
        return self._copies and not any(callable(rows) for _, rows, _ in batches)

    @staticmethod
    @contextlib.contextmanager
    def _pipelined(conn: Connection) -> Iterator[Any]:
        """psycopg's pipeline (PostgreSQL): statements sent without waiting for each result.

        In a pipeline a statement's rows arrive only when fetched, which SQLAlchemy does not
        wait for: code run inside (an append's guard, a page's hook) must use the driver's
        cursor, and a statement SQLAlchemy runs is refused (`_not_pipelined`) rather than read
        as returning no rows.
        """
        driver: Any = conn.connection.driver_connection
        conn.info[_PIPELINED] = True
        try:
            with driver.pipeline() as pipeline:
                yield pipeline
        finally:
            del conn.info[_PIPELINED]

    @staticmethod
    def _copy(cursor: Any, copy: str, rows: list[tuple[Any, ...]]) -> None:
        """`rows` written by PostgreSQL's COPY (a third of the time per row of a multi-row
        insert)."""
        with cursor.copy(copy) as stream:
            for row in rows:
                stream.write_row(row)

    def previous_append(
        self,
        stream_id: str,
        events: Sequence[tuple[UUID, str]],
        *,
        expected_version: int | ExpectedVersion,
    ) -> AppendResult | None:
        """The result of an earlier, committed append of these (event id, type) pairs, if any."""
        if not events:
            return None
        with translate_errors(), self._reader.connect() as conn, conn.begin():
            return _find_previous_append(conn, stream_id, events, expected_version)

    def read_all(
        self, *, after: int = 0, limit: int | None = None, types: Collection[str] | None = None
    ) -> Iterator[list[StoredRow]]:
        """Pages of rows in position order, after position `after`."""
        sql = self._sql
        if types is None:
            return self._pages(sql.after, (), after, limit, POSITION, to_row=self._to_row)
        wanted = tuple(sorted(set(types)))
        if not wanted:
            return iter(())
        return self._pages(sql.typed_after(len(wanted)), wanted, after, limit, POSITION,
                           to_row=self._to_row)

    def read_window(self, *, after: int, upto: int, types: Collection[str] | None = None,
                    stream_prefix: str | None = None, size: int = PAGE_SIZE
                    ) -> Iterator[list[StoredRow]]:
        """Pages of at most `size` rows with ``after < position <= upto``, in position order,
        optionally only of some types or of streams whose id starts with `stream_prefix`."""
        fixed: list[Any] = [upto]
        wanted: list[str] | None = None
        if types is not None:
            wanted = sorted(set(types))
            if not wanted:
                return iter(())
            fixed.extend(wanted)
        if stream_prefix:
            escaped = (stream_prefix.replace("\\", "\\\\").replace("%", "\\%")
                       .replace("_", "\\_"))
            fixed.append(escaped + "%")
        sql = self._sql.window(types=None if wanted is None else len(wanted),
                               stream_prefix=bool(stream_prefix))
        return self._pages(sql, tuple(fixed), after, None, POSITION, to_row=self._to_row,
                           page_size=size)

    def notify_channel(self) -> str | None:
        """PostgreSQL: the channel an append to this table notifies on commit; else None."""
        if self._lock_key is None:
            return None
        return f"shredstore_{self._lock_key[1] & 0xFFFFFFFF}"

    def read_subject(self, subject_id: str, *, after: int = 0) -> Iterator[list[StoredRow]]:
        """Pages of the rows that name `subject_id`, in position order, through the index.

        Only rows whose own ``subjects`` column names the subject are returned (pages may be
        short or empty): an index entry pointing at another subject's event shows nothing.
        """
        pages = self._pages(self._sql.subject_after, (subject_id,), after, None, POSITION,
                            to_row=self._to_row)
        return ([row for row in page if names(row, subject_id)] for page in pages)

    def subject_personal(self, subject_id: str) -> Iterator[list[PersonalRow]]:
        """Pages of (position, stream, type, event id, personal column) of the rows naming
        `subject_id`, read and checked as `read_subject` reads them."""
        for page in self.read_subject(subject_id):
            yield [PersonalRow(row.position, row.stream_id, row.event_type, row.event_id,
                               row.personal) for row in page]

    def read_scope(self, scope: Scope) -> Iterator[list[StoredRow]]:
        """Pages of the rows in `scope`, in position order (pages may be short or empty).

        Read through the narrowest index the scope names (subject, stream, type), then
        filtered: memory stays one page whatever the log's size.
        """
        if scope.subject_id is not None:
            pages = self.read_subject(scope.subject_id)
        elif scope.stream_id is not None:
            pages = self.read_stream(scope.stream_id)
        else:
            pages = self.read_all(types=None if scope.event_type is None
                                  else (scope.event_type,))
        return ([row for row in page if scope.holds(row)] for page in pages)

    def count_scope(self, scope: Scope) -> tuple[int, int, int]:
        """Events, distinct streams and distinct subjects in `scope`, counted by the database.

        A scope of one subject is counted from its rows instead (few, found by the index, each
        checked to name the subject, as `read_subject` does).
        """
        if scope.subject_id is not None:
            return self._count_subject_scope(scope)
        conditions, params = [], []
        for column, value, test in (("stream_id", scope.stream_id, "="),
                                    ("event_type", scope.event_type, "="),
                                    ("recorded_at", scope.since, ">="),
                                    ("recorded_at", scope.until, "<=")):
            if value is not None:
                conditions.append((column, test))
                params.append(self._time_param(value) if isinstance(value, datetime)
                              else value)
        counts, subject_count = self._sql.scope_counts(conditions)
        with translate_errors(), self._reader.connect() as conn, conn.begin():
            events, streams = conn.exec_driver_sql(counts, tuple(params)).one()
            subjects = conn.exec_driver_sql(subject_count, tuple(params)).scalar_one()
        return int(events), int(streams), int(subjects)

    def _count_subject_scope(self, scope: Scope) -> tuple[int, int, int]:
        events = 0
        streams: set[str] = set()
        subjects: set[str] = set()
        for page in self.read_scope(scope):
            for row in page:
                events += 1
                streams.add(row.stream_id)
                subjects.update(parse_subjects(row.subjects))
        return events, len(streams), len(subjects)

    def read_stream(
        self,
        stream_id: str,
        *,
        from_version: int | None = None,
        backwards: bool = False,
        limit: int | None = None,
    ) -> Iterator[list[StoredRow]]:
        """Pages of a stream's rows by version: from `from_version` on, or down from it;
        `TamperedError` where a version is missing (see `_consecutive`)."""
        if backwards:
            bound = (from_version + 1) if from_version is not None else 2**31
            return _consecutive(stream_id, self._pages(
                self._sql.stream_before, (stream_id,), bound, limit, VERSION,
                to_row=self._to_row), None, limit=limit)
        bound = (from_version - 1) if from_version is not None else 0
        return _consecutive(stream_id, self._pages(
            self._sql.stream_after, (stream_id,), bound, limit, VERSION, to_row=self._to_row),
            bound + 1)

    def rows(self) -> Iterator[StoredRow]:
        """Every row, in position order, with its chain hashes, unchecked (verify checks
        authenticators itself, to report every failing row instead of stopping at one)."""
        raw_row = self._raw_row

        def as_read(raw: Any) -> StoredRow:
            try:
                return raw_row(raw)
            except TamperedError:
                return as_stored(raw)  # reported by verify's checks, which it fails

        for page in self._pages(self._sql.after_with_hashes, (), 0, None, POSITION,
                                to_row=as_read, keep_undecodable=True):
            yield from page

    def index_entries(self) -> Iterator[tuple[int, str]]:
        """Every (position, subject id) of the subject index, in that order (for verify)."""
        sql = self._sql.index_after
        after: tuple[int, str] = (-1, "")
        while True:
            with translate_errors(), self._reader.connect() as conn, conn.begin():
                page = conn.exec_driver_sql(sql, (after[0], after[0], after[1], PAGE_SIZE)
                                            ).fetchall()
            for position, subject_id in page:
                yield int(position), subject_id
            if len(page) < PAGE_SIZE:
                return
            after = (int(page[-1][0]), page[-1][1])

    def read_after_snapshot(self, stream_id: str, type_name: str
                            ) -> tuple[Any | None, Iterator[list[StoredRow]]]:
        """The stream's newest snapshot for `type_name` (its raw row, in
        `storage.statements.SNAPSHOT_COLUMNS`; None if it has none), and pages of the stream's
        rows after it (all of them without one).

        The snapshot and the first page are one statement (`Statements.stream_with_snapshot`),
        so they are read as of one moment, and the page hook runs after it whatever the page
        holds (it checks the snapshot's keys too). On PostgreSQL the hook's queries go in the
        statement's pipeline: one round trip, and no transaction of its own to begin and end
        (each statement is its own, in the reader's autocommit)."""
        hook = self._page_hook
        sql = self._sql
        parameters = (stream_id, type_name, stream_id, stream_id, type_name, PAGE_SIZE)
        with translate_errors(), self._read_connection() as conn:  # each statement its own
            # On PostgreSQL the hook's queries share the statement's round trip (its answers
            # are read after it); they run after the statement, so they see every erasure the
            # statement's rows could need.
            if self._copies:
                with self._pipelined(conn):
                    rows = ask_rows(conn, sql.stream_with_snapshot, parameters)
                    finish = hook(conn) if hook is not None else None
                found = rows()
            else:
                found = self._fetch(conn, sql.stream_with_snapshot, parameters)
                finish = hook(conn) if hook is not None else None
            if finish is not None:
                finish()
        snapshot, raw = split_snapshot(found)
        del found
        page = [self._to_row(row) for row in raw]
        # The events after the snapshot's version (an altered one fails the snapshot's own
        # authentication, and the store replays the whole stream instead).
        after = snapshot[1] if snapshot is not None and type(snapshot[1]) is int else None
        first = 1 if snapshot is None else None if after is None else after + 1
        if len(raw) < PAGE_SIZE:
            return snapshot, _consecutive(stream_id, iter((page,) if page else ()), first)
        rest = self._pages(sql.stream_after, (stream_id,), raw[-1][VERSION], None, VERSION,
                           to_row=self._to_row)
        return snapshot, _consecutive(stream_id, itertools.chain((page,), rest), first)

    def _pages(
        self, sql: str, fixed: tuple[Any, ...], bound: int, limit: int | None, key: int, *,
        to_row: Callable[[Any], _Row], page_size: int = 0, keep_undecodable: bool = False,
    ) -> Iterator[list[_Row]]:
        """Keyset pagination: each page is `sql` with (fixed..., bound, size), one statement
        on a connection of its own (see `after_each_page`; `keep_undecodable`: see
        `_fetch`)."""
        page_size = page_size or PAGE_SIZE
        remaining = limit
        hook = self._page_hook if to_row is self._to_row else None
        while remaining is None or remaining > 0:
            size = page_size if remaining is None else min(page_size, remaining)
            with translate_errors(), self._read_connection() as conn:  # each statement its own
                raw = self._page(conn, sql, (*fixed, bound, size), hook, keep_undecodable)
            count = len(raw)
            if count:
                bound = raw[-1][key]
                page = [to_row(row) for row in raw]
                del raw  # not kept alive while the page is read
                yield page
                del page
            if count < size:
                return
            if remaining is not None:
                remaining -= count

    def _page(self, conn: Connection, sql: str, parameters: tuple[Any, ...],
              hook: PageHook | None, keep_undecodable: bool = False) -> list[Any]:
        """One page's raw rows (the driver's cursor: plain tuples, without SQLAlchemy's
        per-row objects), and the page hook run after its query where the page holds personal
        data. On PostgreSQL the hook always runs, pipelined with the query: its statements
        and the page share one round trip, the pipeline's, and are read after it."""
        if hook is None:
            return self._fetch(conn, sql, parameters, keep_undecodable=keep_undecodable)
        if not self._copies:
            raw = self._fetch(conn, sql, parameters)
            if any(row[_PERSONAL] is not None for row in raw):
                hook(conn)()
            return raw
        with self._pipelined(conn):
            rows = ask_rows(conn, sql, parameters)
            finish = hook(conn)
        raw = rows()
        finish()
        return raw

    def _fetch(self, conn: Connection, sql: str, parameters: tuple[Any, ...], *,
               keep_undecodable: bool = False) -> list[Any]:
        """`driver_rows`. On SQLite, whose text columns can hold bytes that are not UTF-8
        (only an edit of the table stores them; the driver then fails the whole statement),
        the statement runs again with such text as `Undecodable` bytes: a read refuses the
        first row that holds one as tampering, and verify (`keep_undecodable`) gets them to
        report."""
        if self._copies:
            return driver_rows(conn, sql, parameters)
        try:
            return driver_rows(conn, sql, parameters)
        except sqlite3.OperationalError as error:
            if "decode to UTF-8" not in str(error):
                raise
        driver: Any = conn.connection.driver_connection
        text_factory = driver.text_factory
        driver.text_factory = text_or_undecodable
        try:
            rows = driver_rows(conn, sql, parameters)
        finally:
            driver.text_factory = text_factory
        if not keep_undecodable:
            for row in rows:
                if any(type(value) is Undecodable for value in row):
                    raise altered(row[0])
        return rows

    def head(self) -> LogHead:
        """The position and hash of the last event (position 0 for an empty log)."""
        with translate_errors(), self._reader.connect() as conn, conn.begin():
            found = driver_rows(conn, self._sql.head)
        last = found[0] if found else None
        return LogHead(int(last[0]), bytes(last[1])) if last is not None else LogHead(0, GENESIS)

    def stream_version(self, stream_id: str) -> int:
        """The version of the stream's last event; 0 if it has none."""
        with translate_errors(), self._reader.connect() as conn, conn.begin():
            ((version,),) = driver_rows(conn, self._sql.stream_version, (stream_id,))
        return int(version or 0)

    def restore_triggers(self) -> list[str]:
        """Re-create missing immutability triggers; return the names that were missing."""
        with translate_errors(), self._write() as conn:
            return schema.restore_triggers(conn)

    def integrity_problems(self) -> list[str]:
        """What the database's own integrity check finds: SQLite's ``PRAGMA integrity_check``
        (every page, index and constraint of the file); nothing where it finds nothing.

        PostgreSQL has no such check an ordinary role can run on its tables (see
        docs/event-log.md: data checksums and amcheck belong to the server's operators).
        """
        if is_postgres(self._engine):
            return []
        try:
            with translate_errors(), self._engine.connect() as conn:
                found = [str(line) for (line,) in
                         conn.exec_driver_sql("PRAGMA integrity_check").fetchall()]
        except StorageError as error:  # a file too damaged for the check to finish
            return [str(error)]
        return [] if found == ["ok"] else found

    def missing_triggers(self) -> list[str]:
        """The immutability triggers that are not in place."""
        with translate_errors(), self._reader.connect() as conn, conn.begin():
            return schema.missing_triggers(conn)

    @contextlib.contextmanager
    def _write(self, engine: Engine | None = None) -> Iterator[Connection]:
        if self.read_only:
            raise ReadOnlyStoreError(
                "this store was opened read-only: nothing can be appended or changed")
        chosen = engine or self._writer
        held = self._appends if chosen is self._appender else None
        with (held.connect() if held is not None else chosen.connect()) as conn, conn.begin():
            yield conn


def _consecutive(stream_id: str, pages: Iterator[list[StoredRow]], first: int | None, *,
                 limit: int | None = None) -> Iterator[list[StoredRow]]:
    """`pages` of a stream's rows, checked to hold its versions one after another: from
    `first` up, or (None) down from the first row's, then to version 1 unless `limit` rows
    came first. Appends give a stream every version from 1 without a gap, so a missing one
    is a row whose version was edited out of the read's range (or deleted past the
    triggers): without this, the read, and an aggregate's fold, would leave it out without
    a word (its authenticator is checked only on rows read)."""
    expected, step, count = first, 1 if first is not None else -1, 0
    for page in pages:
        for row in page:
            if expected is not None and row.version != expected:
                raise _missing(stream_id, expected)
            expected = row.version + step
        count += len(page)
        yield page
    if step < 0 and expected not in (None, 0) and (limit is None or count < limit):
        raise _missing(stream_id, expected)


def _missing(stream_id: str, version: int) -> TamperedError:
    return TamperedError(f"stream {stream_id!r} has no event at version {version}, yet its "
                         "versions go on past it: the stored rows were altered; run verify()")


class _RetryCheck(Exception):
    """Internal: the append must check whether it repeats an append that already committed."""

    def __init__(self, version_mismatch: WrongExpectedVersion | None) -> None:
        self.version_mismatch = version_mismatch


def _find_previous_append(
    conn: Connection,
    stream_id: str,
    events: Sequence[tuple[UUID, str]],
    expected_version: int | ExpectedVersion,
) -> AppendResult | None:
    """The result of an earlier, committed append of these very events, if there was one."""
    ids = [event_id for event_id, _ in events]
    stored = {
        event_id: (stored_stream, version, position, event_type)
        for event_id, stored_stream, version, position, event_type in conn.execute(
            sa.select(_E.c.event_id, _E.c.stream_id, _E.c.version, _E.c.position,
                      _E.c.event_type).where(_E.c.event_id.in_(ids))
        )
    }
    if len(stored) != len(ids):
        return None
    places = [stored[event_id] for event_id in ids]
    first_version = places[0][1]
    same_place = all(
        place[0] == stream_id and place[1] == first_version + i and place[3] == event_type
        for i, (place, (_, event_type)) in enumerate(zip(places, events, strict=True))
    )
    if not same_place or not _expected.satisfied(expected_version, first_version - 1):
        return None
    return AppendResult(stream_id, places[-1][1], tuple(place[2] for place in places))


_PIPELINED = "shredstore.pipelined"


def _not_pipelined(conn: Connection, *_: Any) -> None:
    """Refuses a statement SQLAlchemy would run in an append's pipeline (see `_pipeline`)."""
    if conn.info.get(_PIPELINED):
        raise RuntimeError("an append's guard ran a statement through SQLAlchemy inside the "
                           "append's pipeline, where its rows would read as none: use the "
                           "driver's cursor (conn.connection.cursor())")
