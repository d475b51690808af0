"""A named position with a lease: how one of several worker processes becomes the active one.

Workers that share a name (the saga runners of one name, the relays of one name) keep one row
in a table of ``(name, position, updated_at, owner, lease_until)``: the log position up to
which the work is done, and which process does it until when. A worker takes the lease when
nobody holds it or its holder let it expire, renews it while it works, and releases it when it
stops; the others wait, and one of them takes over within a lease's length of a holder's
death. The database's row lock on the update decides between two that ask at once.
"""

from __future__ import annotations

import contextlib
import functools
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine

from shredstore.errors import ShredstoreError
from shredstore.storage.engine import WRITE, translate_errors

__all__ = ["LeasedPosition", "insert_for"]


class LeasedPosition:
    """The row `name` of `table` (see the module), written through `engine`."""

    def __init__(self, engine: Engine, table: sa.Table, name: str, *,
                 lease: timedelta) -> None:
        self._table = table
        self._name = name
        self._lease = lease
        self.owner = uuid.uuid4().hex
        """This process's mark in the row while it holds the lease."""
        self._writer = engine.execution_options(**WRITE)
        self._engine = engine

    @property
    def name(self) -> str:
        return self._name

    def position(self) -> int:
        """Everything up to this position is done (0: nothing yet)."""
        table = self._table
        with translate_errors(), self._engine.connect() as conn:
            found = conn.execute(sa.select(table.c.position).where(
                table.c.name == self._name)).scalar()
        return int(found or 0)

    def hold(self) -> bool:
        """Take or renew the lease: True if this process holds it now (its holder renewed
        it in time, or let it expire, or released it)."""
        table = self._table
        now = datetime.now(UTC)
        with self._write() as conn:
            conn.execute(insert_for(conn)(table).values(
                name=self._name, position=0, updated_at=now).on_conflict_do_nothing())
            held = conn.execute(table.update().where(
                table.c.name == self._name,
                sa.or_(table.c.owner.is_(None), table.c.owner == self.owner,
                       table.c.lease_until < now))
                .values(owner=self.owner, lease_until=now + self._lease)
                .returning(table.c.name)).first()
        return held is not None

    def release(self) -> None:
        """Give the lease up, if this process holds it (errors are swallowed: a lease that
        cannot be released expires)."""
        table = self._table
        with contextlib.suppress(ShredstoreError), self._write() as conn:
            conn.execute(table.update().where(
                table.c.name == self._name, table.c.owner == self.owner)
                .values(owner=None, lease_until=None))

    def advance(self, position: int, *, fenced: bool = False) -> bool:
        """Store `position` if it is past the stored one. `fenced`: only while this process
        holds the lease, which the same statement renews; False if it no longer does (another
        process took over, and the position was left as that one keeps it)."""
        table = self._table
        now = datetime.now(UTC)
        with self._write() as conn:
            if fenced:
                held = conn.execute(table.update().where(
                    table.c.name == self._name, table.c.owner == self.owner)
                    .values(position=sa.case((table.c.position < position, position),
                                             else_=table.c.position),
                            updated_at=now, lease_until=now + self._lease)
                    .returning(table.c.name)).first()
                return held is not None
            moved = conn.execute(table.update().where(
                table.c.name == self._name, table.c.position < position)
                .values(position=position, updated_at=now)).rowcount
            if not moved:
                conn.execute(insert_for(conn)(table).values(
                    name=self._name, position=position, updated_at=now)
                    .on_conflict_do_nothing())
        return True

    @contextlib.contextmanager
    def _write(self) -> Iterator[Connection]:
        with translate_errors(), self._writer.connect() as conn, conn.begin():
            yield conn


@functools.cache
def _dialect_insert(name: str) -> Any:
    return postgresql.insert if name == "postgresql" else sqlite.insert


def insert_for(conn: Connection) -> Any:
    """The dialect's INSERT, which has ``on_conflict_do_nothing``."""
    return _dialect_insert(conn.dialect.name)
