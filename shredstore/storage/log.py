"""The append-only event log in SQL: ordered, atomic, chained, and safe under concurrency.

Appends are serialised, one at a time across all processes: ``BEGIN IMMEDIATE`` on SQLite, a
transaction-scoped advisory lock on PostgreSQL. Inside that critical section the log reads its
head, assigns the next positions (so positions have no gaps and increase in commit order) and
extends the hash chain. Because a later append cannot start before an earlier one committed,
a reader that has seen position ``p`` has seen every position before it: tailing
``read_all(after=p)`` never skips an event.

Reads page through the table by key (position, or version within a stream), each page in its
own short transaction, so memory stays constant and no snapshot is held open for long.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Collection, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError, IntegrityError

from keyvault.engine import WRITE, driver_message, is_connect_failure, is_postgres
from shredstore import expected as _expected
from shredstore.errors import (
    DuplicateEventError,
    ImmutableLogError,
    StorageError,
    StoreUnavailable,
    WrongExpectedVersion,
)
from shredstore.expected import ExpectedVersion
from shredstore.storage import schema
from shredstore.storage.chain import GENESIS, LogHead, StoredRow, chain_hash

__all__ = ["AppendResult", "EventLog", "NewRow", "translate_errors"]

PAGE_SIZE = 1000
"""Rows fetched per query while reading; bounds the memory of a read."""

_E = schema.EVENTS
_COLUMNS = (
    _E.c.position, _E.c.stream_id, _E.c.version, _E.c.event_id, _E.c.event_type,
    _E.c.schema_version, _E.c.recorded_at, _E.c.metadata, _E.c.payload, _E.c.personal,
    _E.c.prev_hash, _E.c.hash,
)
_SUBJECT_INSERT = schema.SUBJECTS.insert()
# Built once: the append path runs these on every call.
_STREAM_VERSION = sa.select(sa.func.max(_E.c.version)).where(
    _E.c.stream_id == sa.bindparam("stream_id"))
_HEAD = sa.select(_E.c.position, _E.c.hash).order_by(_E.c.position.desc()).limit(1)
_LOCK = sa.text("SELECT pg_advisory_xact_lock(:a, :b)")
_INSERT = _E.insert()


@dataclass(frozen=True, slots=True)
class NewRow:
    """An event ready to be stored: everything but its place in the log."""

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


@dataclass(frozen=True, slots=True)
class AppendResult:
    """Where an append put its events. For an empty batch, `positions` is empty."""

    stream_id: str
    version: int
    """The stream's version after the append: the version of its last event."""
    positions: tuple[int, ...]


@contextlib.contextmanager
def translate_errors() -> Iterator[None]:
    """Turn database-driver errors into shredstore errors; the one place where that happens."""
    try:
        yield
    except DBAPIError as error:
        message = driver_message(error)
        if "append-only" in message:
            raise ImmutableLogError(message) from error
        if is_connect_failure(error):
            raise StoreUnavailable(f"cannot reach the database: {message}") from error
        raise StorageError(f"the database refused: {message}") from error


class EventLog:
    """The events table of one database."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._lock_key: tuple[int, int] | None = None

    def install(self) -> None:
        """Create the table and its immutability triggers if missing."""
        with translate_errors(), self._write() as conn:
            schema.install(conn)
            if is_postgres(conn):
                self._lock_key = schema.table_lock_key(conn)

    def append(
        self,
        stream_id: str,
        rows: Sequence[NewRow],
        *,
        expected_version: int | ExpectedVersion,
        before_insert: Callable[[Connection], None] | None = None,
    ) -> AppendResult:
        """Store `rows` at the end of `stream_id`, all or nothing.

        `before_insert` runs inside the append's transaction, just before the rows are
        written; whatever it raises aborts the append.

        Raises WrongExpectedVersion if the stream is not as expected, DuplicateEventError if
        an event id is already stored other than as this very append. A retry of an append
        that did commit (same event ids, same stream, same place) returns the stored result.
        """
        try:
            with translate_errors(), self._write() as conn:
                return self._append(conn, stream_id, rows, expected_version, before_insert)
        except _RetryCheck as check:
            previous = self.previous_append(
                stream_id, [(row.event_id, row.event_type) for row in rows],
                expected_version=expected_version)
            if previous is not None:
                return previous
            if check.version_mismatch is not None:
                raise check.version_mismatch from None
            raise DuplicateEventError(
                "an event id of this batch is already stored, in another stream or place; "
                "event ids must be unique"
            ) from None

    def _append(
        self,
        conn: Connection,
        stream_id: str,
        rows: Sequence[NewRow],
        expected_version: int | ExpectedVersion,
        before_insert: Callable[[Connection], None] | None,
    ) -> AppendResult:
        if self._lock_key is not None:
            # A statement of its own: in READ COMMITTED a statement's snapshot is taken
            # before a lock inside it is granted, so the reads below must come after.
            conn.execute(_LOCK, {"a": self._lock_key[0], "b": self._lock_key[1]})
        current = conn.execute(_STREAM_VERSION, {"stream_id": stream_id}).scalar() or 0
        if not _expected.satisfied(expected_version, current):
            mismatch = WrongExpectedVersion(
                stream_id, expected=expected_version, actual=current or None
            )
            if rows:
                raise _RetryCheck(mismatch)
            raise mismatch
        if not rows:
            return AppendResult(stream_id, current, ())

        last = conn.execute(_HEAD).first()
        position, prev_hash = (last[0], last[1]) if last is not None else (0, GENESIS)
        recorded_at = datetime.now(UTC)
        params: list[dict[str, Any]] = []
        for offset, row in enumerate(rows, start=1):
            version = current + offset
            digest = chain_hash(
                prev_hash,
                stream_id=stream_id,
                version=version,
                event_id=row.event_id,
                event_type=row.event_type,
                schema_version=row.schema_version,
                recorded_at=recorded_at,
                metadata=row.metadata,
                payload=row.payload,
                personal=row.personal,
            )
            params.append({
                "position": position + offset,
                "stream_id": stream_id,
                "version": version,
                "event_id": row.event_id,
                "event_type": row.event_type,
                "schema_version": row.schema_version,
                "recorded_at": recorded_at,
                "metadata": row.metadata,
                "payload": row.payload,
                "personal": row.personal,
                "prev_hash": prev_hash,
                "hash": digest,
            })
            prev_hash = digest
        if before_insert is not None:
            before_insert(conn)
        try:
            conn.execute(_INSERT, params)
        except IntegrityError:
            raise _RetryCheck(None) from None
        index = [{"subject_id": subject, "position": p["position"]}
                 for p, row in zip(params, rows, strict=True) for subject in row.subjects]
        if index:
            conn.execute(_SUBJECT_INSERT, index)
        return AppendResult(
            stream_id, current + len(rows), tuple(p["position"] for p in params)
        )

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
        with translate_errors(), self._engine.connect() as conn, conn.begin():
            return _find_previous_append(conn, stream_id, events, expected_version)

    def read_all(
        self, *, after: int = 0, limit: int | None = None, types: Collection[str] | None = None
    ) -> Iterator[list[StoredRow]]:
        """Pages of rows in position order, after position `after`."""
        query = sa.select(*_COLUMNS).order_by(_E.c.position)
        if types is not None:
            query = query.where(_E.c.event_type.in_(sorted(set(types))))
        return self._pages(query, _E.c.position, after, limit, lambda row: row.position)

    def read_subject(self, subject_id: str, *, after: int = 0) -> Iterator[list[StoredRow]]:
        """Pages of the rows that name `subject_id`, in position order, through the index."""
        index = schema.SUBJECTS
        query = (sa.select(*_COLUMNS)
                 .join(index, index.c.position == _E.c.position)
                 .where(index.c.subject_id == subject_id)
                 .order_by(_E.c.position))
        return self._pages(query, _E.c.position, after, None, lambda row: row.position)

    def read_stream(
        self,
        stream_id: str,
        *,
        from_version: int | None = None,
        backwards: bool = False,
        limit: int | None = None,
    ) -> Iterator[list[StoredRow]]:
        """Pages of a stream's rows by version: from `from_version` on, or down from it."""
        query = sa.select(*_COLUMNS).where(_E.c.stream_id == stream_id)
        if backwards:
            query = query.order_by(_E.c.version.desc())
            bound = (from_version + 1) if from_version is not None else None
        else:
            query = query.order_by(_E.c.version)
            bound = (from_version - 1) if from_version is not None else 0
        return self._pages(query, _E.c.version, bound, limit, lambda row: row.version,
                           descending=backwards)

    def rows(self) -> Iterator[StoredRow]:
        """Every row, in position order."""
        for page in self.read_all():
            yield from page

    def _pages(
        self,
        query: sa.Select[Any],
        key: sa.ColumnElement[Any],
        bound: int | None,
        limit: int | None,
        key_of: Callable[[StoredRow], int],
        *,
        descending: bool = False,
    ) -> Iterator[list[StoredRow]]:
        remaining = limit
        while remaining is None or remaining > 0:
            size = PAGE_SIZE if remaining is None else min(PAGE_SIZE, remaining)
            page_query = query
            if bound is not None:
                page_query = query.where(key < bound if descending else key > bound)
            page = self._page(page_query.limit(size))
            if page:
                yield page
            if len(page) < size:
                return
            bound = key_of(page[-1])
            if remaining is not None:
                remaining -= len(page)

    def head(self) -> LogHead:
        """The position and hash of the last event (position 0 for an empty log)."""
        with translate_errors(), self._engine.connect() as conn, conn.begin():
            last = conn.execute(_HEAD).first()
        return LogHead(last[0], last[1]) if last is not None else LogHead(0, GENESIS)

    def stream_version(self, stream_id: str) -> int:
        """The version of the stream's last event; 0 if it has none."""
        with translate_errors(), self._engine.connect() as conn, conn.begin():
            version = conn.execute(_STREAM_VERSION, {"stream_id": stream_id}).scalar()
        return int(version or 0)

    def restore_triggers(self) -> list[str]:
        """Re-create missing immutability triggers; return the names that were missing."""
        with translate_errors(), self._write() as conn:
            return schema.restore_triggers(conn)

    def missing_triggers(self) -> list[str]:
        """The immutability triggers that are not in place."""
        with translate_errors(), self._engine.connect() as conn, conn.begin():
            return schema.missing_triggers(conn)

    def _page(self, query: sa.Select[Any]) -> list[StoredRow]:
        with translate_errors(), self._engine.connect() as conn, conn.begin():
            rows = conn.execute(query).all()
        return [
            StoredRow(
                position, stream_id, version, event_id, event_type, schema_version,
                _utc(recorded_at), metadata, payload, personal, prev_hash, digest,
            )
            for (position, stream_id, version, event_id, event_type, schema_version,
                 recorded_at, metadata, payload, personal, prev_hash, digest) in rows
        ]

    @contextlib.contextmanager
    def _write(self) -> Iterator[Connection]:
        with self._engine.connect() as conn:
            conn.execution_options(**WRITE)
            with conn.begin():
                yield conn


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


def _utc(moment: datetime) -> datetime:
    # SQLite hands back naive UTC; PostgreSQL an aware time in the session's zone.
    return moment.astimezone(UTC) if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
