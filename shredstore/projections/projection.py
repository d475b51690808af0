"""Projections: read models built from the log, which forget a subject when it is erased.

A projection names itself, lists its tables (SQLAlchemy Core), and declares a handler per event
type with `@handles`. Columns that hold personal data are marked ``info={"personal": True}``
(optionally with a ``"replacement"``); a projection that has such columns must say how it
forgets a subject, by overriding `forget`, which receives every `SubjectErased` of the erasure
ledger. `delete_rows` and `redact_columns` are the two usual ways.

After an erasure a replay reads the subject's fields as `REDACTED`; it binds as the text
``[redacted]`` in SQL parameters, so a rebuild writes redacted values by construction.
"""

from __future__ import annotations

import importlib
import importlib.util
import sqlite3
from collections.abc import Callable, Iterable
from typing import Any, ClassVar, TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from shredstore.errors import ConfigurationError
from shredstore.events import Event, RecordedEvent
from shredstore.personal import Redacted

__all__ = ["Projection", "delete_rows", "handles", "personal_columns", "redact_columns"]

Handler = Callable[[Any, Connection, RecordedEvent], None]
H = TypeVar("H", bound=Handler)


def handles(*event_types: type[Event] | str) -> Callable[[H], H]:
    """Mark a projection method as the handler of these event classes (or stored type names):
    ``def on_x(self, conn: Connection, record: RecordedEvent) -> None``."""
    if not event_types:
        raise ConfigurationError("@handles needs at least one event type")
    names = tuple(kind if isinstance(kind, str) else kind.__event_type__ for kind in event_types)

    def mark(method: H) -> H:
        method.__shredstore_handles__ = names  # type: ignore[attr-defined]
        return method

    return mark


class Projection:
    """A read model. Subclass it with a `name`, its `tables`, `@handles` methods and, if it
    keeps personal data, `forget`. Each batch of events and the projection's checkpoint are
    written in one transaction by `ProjectionRunner`, so every event takes effect once."""

    name: ClassVar[str] = ""
    """Unique per read-model database; the key of its checkpoint."""
    tables: ClassVar[tuple[sa.Table, ...]] = ()
    """The tables it owns: created at start, dropped and re-created by a rebuild."""
    _handlers: ClassVar[dict[str, str]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        handlers = dict(cls._handlers)
        for attribute, value in vars(cls).items():
            for name in getattr(value, "__shredstore_handles__", ()):
                handlers[name] = attribute
        cls._handlers = handlers

    @property
    def event_types(self) -> frozenset[str]:
        """The stored type names it handles."""
        return frozenset(self._handlers)

    def handle(self, conn: Connection, record: RecordedEvent) -> None:
        """Apply one event (nothing if the projection does not handle its type)."""
        attribute = self._handlers.get(record.event_type)
        if attribute is not None:
            getattr(self, attribute)(conn, record)

    def forget(self, conn: Connection, subject_id: str) -> None:
        """Remove or overwrite everything this read model holds of `subject_id`; called in
        the transaction that applies the subject's `SubjectErased`. The default does
        nothing, which is only right for a projection without personal columns."""

    @classmethod
    def forgets(cls) -> bool:
        """Whether the projection declares how it forgets a subject."""
        return cls.forget is not Projection.forget

    @classmethod
    def personal(cls) -> list[sa.Column[Any]]:
        """Its columns marked as personal data."""
        return [column for table in cls.tables for column in personal_columns(table)]


def personal_columns(table: sa.Table) -> list[sa.Column[Any]]:
    """The columns of `table` marked ``info={"personal": True}``."""
    return [column for column in table.columns if column.info.get("personal")]


def delete_rows(conn: Connection, table: sa.Table, subject_column: str, subject_id: str) -> int:
    """Forget by deletion: remove the rows whose `subject_column` is the subject; how many."""
    result = conn.execute(table.delete().where(table.c[subject_column] == subject_id))
    return int(result.rowcount)


def redact_columns(conn: Connection, table: sa.Table, subject_column: str, subject_id: str,
                   columns: Iterable[str] | None = None) -> int:
    """Forget by overwriting: set the personal columns (or `columns`) of the subject's rows to
    their declared ``info["replacement"]``, else NULL; how many rows."""
    chosen = ([table.c[name] for name in columns] if columns is not None
              else personal_columns(table))
    if not chosen:
        raise ConfigurationError(f"table {table.name} has no personal columns to redact")
    values = {column.name: column.info.get("replacement") for column in chosen}
    result = conn.execute(table.update().where(table.c[subject_column] == subject_id)
                          .values(values))
    return int(result.rowcount)


def _bind_redacted_as_text() -> None:
    """Let `REDACTED` be a SQL parameter on both drivers: it binds as ``[redacted]``."""
    sqlite3.register_adapter(Redacted, str)
    if importlib.util.find_spec("psycopg") is None:  # PostgreSQL support is an extra
        return
    psycopg: Any = importlib.import_module("psycopg")
    adapt: Any = importlib.import_module("psycopg.adapt")

    class _RedactedDumper(adapt.Dumper):  # type: ignore[misc]
        oid = psycopg.adapters.types["text"].oid

        def dump(self, obj: Any) -> bytes:
            return str(obj).encode()

    psycopg.adapters.register_dumper(Redacted, _RedactedDumper)


_bind_redacted_as_text()
