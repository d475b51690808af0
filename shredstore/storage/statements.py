"""The SQL of the log's hot paths (appends, reads, the lookups they make), written out for the
driver.

SQLAlchemy's per-statement execution and per-row processing would be the largest cost of an
append or a read otherwise. Every statement is built once per backend (or per IN-list length),
from the table and column objects of `shredstore.storage.schema` and placeholder marks only,
never from values; values are passed in the formats SQLAlchemy's types store
(`shredstore.storage.formats`), so the tables and the rest of the code stay plain SQLAlchemy.
Set-up and rare paths (install, settings, a retried append) use SQLAlchemy Core on the same
table objects.
"""

# ruff: noqa: S608

from __future__ import annotations

from collections.abc import Sequence
from operator import itemgetter
from typing import Any

import sqlalchemy as sa

from shredstore.storage import schema

__all__ = ["COLUMNS", "IN_LIST", "POSITION", "READ_COLUMNS", "SNAPSHOT_COLUMNS", "VERSION",
           "Statements", "split_snapshot"]

_E = schema.EVENTS
_I = schema.SUBJECTS
_EVENTS = _E.name
_INDEX = _I.name

READ_COLUMNS: tuple[sa.Column[Any], ...] = (
    _E.c.position, _E.c.stream_id, _E.c.version, _E.c.event_id, _E.c.event_type,
    _E.c.schema_version, _E.c.recorded_at, _E.c.metadata, _E.c.payload, _E.c.personal,
    _E.c.subjects, _E.c.mac)
"""The columns a read returns, in this order (`shredstore.storage.formats` decodes them)."""

COLUMNS = (*READ_COLUMNS, _E.c.prev_hash, _E.c.hash)
"""Every column, as an append writes them and verify reads them: reads leave out the chain
hashes (only verify needs them)."""

POSITION, VERSION = 0, 2
"""Where the keyset columns are in a raw row."""

IN_LIST = 500
"""Values per IN list (SQLite's older builds allow 999 parameters per statement)."""

SNAPSHOT_COLUMNS = ("stream_id", "version", "type_name", "schema_version", "state", "personal",
                    "mac")
"""The columns of a snapshot as read, in this order."""

def _read_lists(postgres: bool, prefix: str) -> tuple[str, str]:
    """The read columns, and every column, as select lists (each name after `prefix`).

    PostgreSQL returns ``recorded_at`` as whole microseconds since the epoch (exactly, on any
    server version): turning its text into an aware time and back cost more than any other
    column (`shredstore.storage.formats` builds the time from the number). A time no Python
    datetime holds (``infinity``, a year after 9999 or before 1: only an edit of the table
    stores one) reads as NULL, which the reader refuses as tampering, rather than failing the
    whole statement with an overflow.
    """
    def name(column: sa.Column[Any]) -> str:
        if postgres and column.name == "recorded_at":
            moment = f"{prefix}recorded_at"
            return (f"CASE WHEN {moment} BETWEEN '0001-01-01 00:00:00+00' AND "
                    f"'9999-12-31 23:59:59.999999+00' THEN "
                    f"EXTRACT(EPOCH FROM date_trunc('second', {moment}))::bigint * 1000000 "
                    f"+ mod(EXTRACT(MICROSECONDS FROM {moment})::bigint, 1000000) END")
        return f"{prefix}{column.name}"
    return (", ".join(map(name, READ_COLUMNS)), ", ".join(map(name, COLUMNS)))
_SNAPSHOTS = schema.SNAPSHOTS.name
_NULLS_POSTGRES = {"position": "NULL::bigint", "event_id": "NULL::uuid",
                   "recorded_at": "NULL::bigint", "text": "NULL::text"}
_NULLS_SQLITE = dict.fromkeys(_NULLS_POSTGRES, "NULL")
"""The empty event columns of a snapshot read as an event row (`stream_with_snapshot`)."""
_SNAPSHOT_LIST = ", ".join(schema.SNAPSHOTS.c[name].name for name in SNAPSHOT_COLUMNS)
_COLUMN_LIST = ", ".join(column.name for column in COLUMNS)


class Statements:
    """The hot-path statements for one backend's placeholder `mark` (``?`` or ``%s``)."""

    def __init__(self, mark: str) -> None:
        self.mark = mark
        postgres = mark == "%s"
        reads, every = _read_lists(postgres, "")
        self._reads = reads
        select = f"SELECT {reads} FROM {_EVENTS}"
        self.after_with_hashes = (f"SELECT {every} FROM {_EVENTS} "
                                  f"WHERE position > {mark} ORDER BY position LIMIT {mark}")
        self.after = f"{select} WHERE position > {mark} ORDER BY position LIMIT {mark}"
        self.stream_after = (f"{select} WHERE stream_id = {mark} AND version > {mark} "
                             f"ORDER BY version LIMIT {mark}")
        self.stream_before = (f"{select} WHERE stream_id = {mark} AND version < {mark} "
                              f"ORDER BY version DESC LIMIT {mark}")
        # A page of the subject index first, then its events by primary key: the planner
        # cannot turn a page into a scan of the events table (a merge join from its start).
        subject_rows = (f"FROM (SELECT position FROM {_INDEX} "
                        f"WHERE subject_id = {mark} AND position > {mark} "
                        f"ORDER BY position LIMIT {mark}) s "
                        f"JOIN {_EVENTS} e ON e.position = s.position ORDER BY s.position")
        self.subject_after = f"SELECT {_read_lists(postgres, 'e.')[0]} {subject_rows}"
        self.by_event_id = f"{select} WHERE event_id = {mark}"

        self.head = f"SELECT position, hash FROM {_EVENTS} ORDER BY position DESC LIMIT 1"
        self.stream_version = f"SELECT max(version) FROM {_EVENTS} WHERE stream_id = {mark}"
        self.tail = (f"SELECT version, position, event_id FROM {_EVENTS} "
                     f"WHERE stream_id = {mark} ORDER BY version DESC LIMIT 1")
        self.tail_since = (f"SELECT version, position, event_id, subjects FROM {_EVENTS} "
                           f"WHERE stream_id = {mark} AND version >= {mark} ORDER BY version "
                           f"LIMIT {mark}")
        self.index_after = (f"SELECT position, subject_id FROM {_INDEX} "
                            f"WHERE position > {mark} OR (position = {mark} "
                            f"AND subject_id > {mark}) "
                            f"ORDER BY position, subject_id LIMIT {mark}")

        self.lock = f"SELECT pg_advisory_xact_lock({mark}, {mark})"
        self.version_and_head = (
            f"SELECT (SELECT max(version) FROM {_EVENTS} WHERE stream_id = {mark}), "
            f"position, hash FROM {_EVENTS} ORDER BY position DESC LIMIT 1")
        marks = ", ".join([mark] * len(COLUMNS))
        self.insert = f"INSERT INTO {_EVENTS} ({_COLUMN_LIST}) VALUES ({marks})"
        self.insert_subject = (f"INSERT INTO {_INDEX} (subject_id, position) "
                               f"VALUES ({mark}, {mark})")
        # PostgreSQL only: a batch's index entries as one statement of two arrays (it can go
        # in the append's pipeline, where COPY cannot).
        self.insert_subject_arrays = (f"INSERT INTO {_INDEX} (subject_id, position) "
                                      f"SELECT * FROM unnest({mark}::text[], {mark}::bigint[])"
                                      if postgres else "")
        # PostgreSQL's bulk load, with the same columns (used for batches).
        self.copy_events = f"COPY {_EVENTS} ({_COLUMN_LIST}) FROM STDIN"
        self.copy_subjects = f"COPY {_INDEX} (subject_id, position) FROM STDIN"
        self.latest_snapshot = (
            f"SELECT {_SNAPSHOT_LIST} FROM {_SNAPSHOTS} WHERE stream_id = {mark} "
            f"AND type_name = {mark} ORDER BY version DESC LIMIT 1")
        # A stream's newest snapshot of a type and the first page of its events after it, as
        # one statement (parameters: stream, type, stream, stream, type, page size), so both
        # are read as of one moment without a transaction of their own. The snapshot comes as
        # a row whose position is NULL, its columns in event columns of the same types
        # (`split_snapshot` takes it out); the events follow, by version.
        typed = _NULLS_POSTGRES if postgres else _NULLS_SQLITE
        snapshot_as_row = (
            f"SELECT {typed['position']} AS position, stream_id, version, "
            f"{typed['event_id']}, type_name, schema_version, {typed['recorded_at']}, "
            f"{typed['text']}, state, personal, {typed['text']}, mac FROM {_SNAPSHOTS} "
            f"WHERE stream_id = {mark} AND type_name = {mark} ORDER BY version DESC LIMIT 1")
        self.stream_with_snapshot = (
            f"SELECT * FROM ({snapshot_as_row}) s UNION ALL SELECT * FROM ("
            f"{select} WHERE stream_id = {mark} AND version > COALESCE(("
            f"SELECT max(version) FROM {_SNAPSHOTS} WHERE stream_id = {mark} "
            f"AND type_name = {mark}), 0) ORDER BY version LIMIT {mark}) e")

    def _marks(self, count: int) -> str:
        return ", ".join([self.mark] * count)

    def typed_after(self, count: int) -> str:
        """A page of events of `count` types (parameters: the types, position, page size)."""
        return (f"SELECT {self._reads} FROM {_EVENTS} WHERE event_type IN ({self._marks(count)}) "
                f"AND position > {self.mark} ORDER BY position LIMIT {self.mark}")

    def event_ids_among(self, count: int) -> str:
        """Which of `count` event ids are stored (parameters: the ids)."""
        return f"SELECT event_id FROM {_EVENTS} WHERE event_id IN ({self._marks(count)})"

    def window(self, *, types: int | None, stream_prefix: bool) -> str:
        """A page of a read window (parameters: upto, the types, the escaped LIKE pattern if
        `stream_prefix`, then position and page size)."""
        mark = self.mark
        where = [f"position <= {mark}"]
        if types is not None:
            where.append(f"event_type IN ({self._marks(types)})")
        if stream_prefix:
            where.append(f"stream_id LIKE {mark} ESCAPE '\\'")
        return (f"SELECT {self._reads} FROM {_EVENTS} WHERE {' AND '.join(where)} "
                f"AND position > {mark} ORDER BY position LIMIT {mark}")

    def scope_counts(self, conditions: Sequence[tuple[str, str]]) -> tuple[str, str]:
        """Two counts over the events that meet every (column, operator) condition, each
        compared with a parameter: (events, distinct streams), and distinct subjects (through
        the index)."""
        columns = {column.name for column in READ_COLUMNS}
        where = ["1 = 1"]
        for column, operator in conditions:
            if column not in columns or operator not in ("=", "<=", ">="):
                raise ValueError(f"no condition on {column} {operator}")
            where.append(f"e.{column} {operator} {self.mark}")
        condition = " AND ".join(where)
        return (f"SELECT count(*), count(DISTINCT e.stream_id) FROM {_EVENTS} e "
                f"WHERE {condition}",
                f"SELECT count(DISTINCT s.subject_id) FROM {_INDEX} s "
                f"JOIN {_EVENTS} e ON e.position = s.position WHERE {condition}")


_SNAPSHOT_IN_ROW = itemgetter(1, 2, 4, 5, 8, 9, 11)
"""Where `stream_with_snapshot` puts a snapshot's `SNAPSHOT_COLUMNS` in its row."""
_BY_VERSION = itemgetter(VERSION)


def split_snapshot(raw: Sequence[Any]) -> tuple[tuple[Any, ...] | None, list[Any]]:
    """The rows of `Statements.stream_with_snapshot`: the snapshot's row in
    `SNAPSHOT_COLUMNS` order (None if the stream has none), and the event rows by version
    (ordered here: SQL does not promise the order of a union's rows)."""
    snapshot = None
    events = []
    for row in raw:
        if row[POSITION] is None:
            snapshot = _SNAPSHOT_IN_ROW(row)
        else:
            events.append(row)
    events.sort(key=_BY_VERSION)
    return snapshot, events
