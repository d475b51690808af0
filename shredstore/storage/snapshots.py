"""Snapshots of aggregate state in SQL: written beside the log, read newest first."""

from __future__ import annotations

from collections.abc import Collection, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from shredstore.storage import schema
from shredstore.storage.engine import WRITE, driver_rows, is_postgres, translate_errors
from shredstore.storage.statements import SNAPSHOT_COLUMNS, Statements

__all__ = ["SnapshotRow", "SnapshotTable", "snapshot_row"]

_T = schema.SNAPSHOTS
_ROW_COLUMNS = tuple(_T.c[name] for name in SNAPSHOT_COLUMNS)
_PAGE = 500


@dataclass(frozen=True, slots=True)
class SnapshotRow:
    """A stored snapshot: the state of `stream_id` after its event `version`."""

    stream_id: str
    version: int
    type_name: str
    schema_version: int
    state: str
    personal: str | None
    mac: bytes | None = None
    """Its authenticator (see `shredstore.storage.authentication`); None if written by a
    store without the master key. A store with the master key never loads one that fails."""


class SnapshotTable:
    """The snapshots table of one database."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._latest = Statements("%s" if is_postgres(engine) else "?").latest_snapshot

    def save(self, row: SnapshotRow) -> None:
        """Store a snapshot; storing one again for the same version replaces it."""
        values = {
            "stream_id": row.stream_id, "version": row.version, "type_name": row.type_name,
            "schema_version": row.schema_version, "state": row.state,
            "personal": row.personal, "mac": row.mac, "recorded_at": datetime.now(UTC),
        }
        with translate_errors(), self._engine.connect() as conn:
            conn.execution_options(**WRITE)
            with conn.begin():
                conn.execute(_T.delete().where(_T.c.stream_id == row.stream_id,
                                           _T.c.version == row.version))
                conn.execute(_T.insert().values(**values))

    def latest(self, stream_id: str, type_name: str, connection: Connection | None = None
               ) -> SnapshotRow | None:
        """The newest snapshot of `stream_id` written for `type_name`, if any; read in
        `connection`'s transaction if given."""
        # On the driver's cursor: every aggregate load asks, and building and executing a
        # select through SQLAlchemy cost several times the query.
        if connection is None:
            with translate_errors(), self._engine.connect() as conn:
                return self.latest(stream_id, type_name, conn)
        found = driver_rows(connection, self._latest, (stream_id, type_name))
        return snapshot_row(found[0]) if found else None

    def rows(self) -> Iterator[SnapshotRow]:
        """Every snapshot, by stream and version, a page at a time (for verify)."""
        after: tuple[str, int] = ("", -1)
        while True:
            with translate_errors(), self._engine.connect() as conn:
                page = conn.execute(
                    sa.select(*_ROW_COLUMNS)
                    .where(sa.or_(_T.c.stream_id > after[0],
                                  sa.and_(_T.c.stream_id == after[0], _T.c.version > after[1])))
                    .order_by(_T.c.stream_id, _T.c.version).limit(_PAGE)).all()
            yield from (snapshot_row(found) for found in page)
            if len(page) < _PAGE:
                return
            after = (page[-1][0], page[-1][1])

    def count(self, stream_id: str) -> int:
        """How many snapshots `stream_id` has."""
        with translate_errors(), self._engine.connect() as conn:
            return int(conn.execute(sa.select(sa.func.count()).select_from(_T)
                                    .where(_T.c.stream_id == stream_id)).scalar_one())

    def personal_columns(self, stream_ids: Collection[str]) -> Iterator[str]:
        """The personal columns of the snapshots of `stream_ids` that have one."""
        wanted = sorted(set(stream_ids))
        for start in range(0, len(wanted), 500):
            with translate_errors(), self._engine.connect() as conn:
                rows = conn.execute(sa.select(_T.c.personal).where(
                    _T.c.stream_id.in_(wanted[start:start + 500]),
                    _T.c.personal.is_not(None))).all()
            yield from (personal for (personal,) in rows)


def snapshot_row(found: Any) -> SnapshotRow:
    """A snapshot read as the driver returns it (`SNAPSHOT_COLUMNS`), as a `SnapshotRow`."""
    mac = found[6]
    return SnapshotRow(found[0], found[1], found[2], found[3], found[4], found[5],
                       bytes(mac) if mac is not None else None)
