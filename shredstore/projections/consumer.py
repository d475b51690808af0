"""Idempotent consumers: at-least-once delivery, with each event taking effect once.

A consumer that reacts to events (for email, a broker, an HTTP call) will sometimes get the
same event twice: after a crash, a retry, or a second process handling the same events. An
`IdempotentConsumer` writes a marker (consumer name, event id) in the same transaction as the
consumer's own writes, before them: a redelivered event finds its marker and is skipped, and a
handler that fails rolls the marker back with everything else, so the event is handled again.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Self
from uuid import UUID

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import URL, Connection, Engine

from shredstore.causation import caused_by
from shredstore.errors import ConfigurationError, StorageError
from shredstore.events import RecordedEvent
from shredstore.storage.engine import WRITE, create_engine, is_postgres, translate_errors
from shredstore.storage.schema import PROCESSED, install_processed

__all__ = ["Handler", "IdempotentConsumer", "PROCESSED"]


Handler = Callable[[Connection, RecordedEvent], object]
"""A consumer's handler: its writes go through the connection, inside the marker's transaction.
It must not commit or roll back that connection itself; whatever it returns is ignored."""


class IdempotentConsumer:
    """Runs a handler once per event for the consumer `name`, however often the event arrives.

    ``IdempotentConsumer("sqlite:///app.db", "welcome-email")``, or a PostgreSQL URL, or an
    SQLAlchemy `Engine` (shared, and not disposed by `close()`). The markers table is created
    if missing (``create=False``: `ConfigurationError` instead). The markers must live in the
    same database as the consumer's own tables, or the two cannot share a transaction. Use it
    as a context manager, or call `close()`.
    """

    def __init__(self, url_or_engine: str | URL | Engine, name: str, *,
                 create: bool = True) -> None:
        if not isinstance(name, str) or not name.strip():
            raise ConfigurationError(
                "a consumer name is a non-empty string that names what the consumer does, "
                "such as 'welcome-email'")
        self._name = name
        self._owns_engine = not isinstance(url_or_engine, Engine)
        # An Engine is configured in place, as the event store does: on SQLite, writes then
        # begin IMMEDIATE (the configuration is idempotent, so a store's engine is unchanged).
        engine = create_engine(url_or_engine)
        self._engine: Engine | None = engine
        insert = postgresql.insert if is_postgres(engine) else sqlite.insert
        # RETURNING tells a new marker from a conflict; rowcount does not on every driver.
        self._mark = insert(PROCESSED).on_conflict_do_nothing().returning(PROCESSED.c.position)
        try:
            if create:
                self._install(engine)
            elif not _installed(engine):
                raise ConfigurationError(
                    f"the table {PROCESSED.name} does not exist; open a consumer with "
                    "create=True (the default) once, or create it from "
                    "shredstore.projections.consumer.PROCESSED")
        except BaseException:
            self.close()
            raise

    @property
    def name(self) -> str:
        """The consumer's name: markers of different names do not see each other."""
        return self._name

    def handle(self, record: RecordedEvent, handler: Handler) -> bool:
        """Run ``handler(conn, record)`` unless this consumer already processed the event.

        One transaction holds the marker and the handler's writes through `conn`: True when
        both committed, False (and the handler not called) when the event was processed
        before. If the handler raises, nothing it wrote and no marker is kept, and the error
        propagates unchanged: a later delivery runs the handler again. Two processes that
        handle the same event at once are safe: one runs the handler, the other waits for its
        commit and then returns False (or, if it rolled back, runs the handler itself).
        The handler runs inside `shredstore.causation.caused_by(record)`: events it appends
        carry the record's correlation id and its event id as their causation id.
        """
        engine = self._open_engine()
        values = {"consumer": self._name, "event_id": record.event_id,
                  "position": record.position, "processed_at": datetime.now(UTC)}
        with translate_errors():
            conn = engine.connect()
        with conn:
            conn.execution_options(**WRITE)
            with translate_errors():
                transaction = conn.begin()
            with transaction:  # rolls back if anything below raises, the handler included
                with translate_errors():
                    first = conn.execute(self._mark, values).first() is not None
                if first:
                    with caused_by(record):  # what the handler appends names its cause
                        handler(conn, record)
                    if _aborted(conn):
                        raise StorageError(
                            "a statement of the handler failed and the error was caught, so "
                            "PostgreSQL aborted the transaction: nothing was stored and the "
                            "event counts as not processed; let database errors propagate")
                with translate_errors():
                    transaction.commit()
        return first

    def is_processed(self, event_id: UUID) -> bool:
        """Whether this consumer's marker for `event_id` is stored (committed)."""
        if not isinstance(event_id, UUID):
            raise ConfigurationError("an event id is a UUID, such as RecordedEvent.event_id")
        engine = self._open_engine()
        with translate_errors(), engine.connect() as conn:
            found = conn.execute(sa.select(PROCESSED.c.position).where(
                PROCESSED.c.consumer == self._name,
                PROCESSED.c.event_id == event_id)).first()
        return found is not None

    def forget_before(self, moment: datetime) -> int:
        """Delete this consumer's markers processed before `moment` (aware); how many.

        An event whose marker is gone is handled again if it is delivered again: prune only
        markers older than the longest time a redelivery can take.
        """
        if not isinstance(moment, datetime) or moment.tzinfo is None:
            raise ConfigurationError("forget_before needs an aware datetime, e.g. in UTC")
        engine = self._open_engine()
        with translate_errors(), engine.connect() as conn:
            conn.execution_options(**WRITE)
            with conn.begin():
                deleted = conn.execute(PROCESSED.delete().where(
                    PROCESSED.c.consumer == self._name,
                    PROCESSED.c.processed_at < moment.astimezone(UTC)))
        return int(deleted.rowcount)

    def close(self) -> None:
        """Release the database connections, if the consumer opened them. Idempotent."""
        engine, self._engine = self._engine, None
        if engine is not None and self._owns_engine:
            engine.dispose()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"IdempotentConsumer(name={self._name!r})"

    def _open_engine(self) -> Engine:
        if self._engine is None:
            raise ConfigurationError("the consumer is closed")
        return self._engine

    @staticmethod
    def _install(engine: Engine) -> None:
        with translate_errors(), engine.connect() as conn:
            conn.execution_options(**WRITE)
            with conn.begin():
                install_processed(conn)


def _installed(engine: Engine) -> bool:
    """Whether the markers table exists (an SQLite file is not created to find out)."""
    database = engine.url.database
    if (engine.url.get_backend_name() == "sqlite" and database not in (None, "", ":memory:")
            and not Path(database).exists()):
        return False
    with translate_errors(), engine.connect() as conn:
        return sa.inspect(conn).has_table(PROCESSED.name)


def _aborted(conn: Connection) -> bool:
    """Whether PostgreSQL aborted the transaction: its COMMIT would then roll back, silently.

    psycopg reports it without a round trip; SQLite rolls back only the failed statement and
    has no such state.
    """
    info = getattr(conn.connection.dbapi_connection, "info", None)
    status = getattr(info, "transaction_status", None)
    return getattr(status, "name", None) == "INERROR"
