"""The peers shredstore is measured against, and the registry of all three contenders.

``eventsourcing``
    eventsourcing 9.5 with ``CIPHER_TOPIC=eventsourcing.cryptography:AESCipher`` (one
    application key, whole events encrypted), configured through its environment like any
    eventsourcing application: ``eventsourcing.sqlite`` (``SQLITE_DBNAME``) or
    ``eventsourcing.postgres`` (``POSTGRES_*``, ``POSTGRES_SCHEMA``). Appends:
    ``app.save(*events)`` (maps, encrypts and records them in one transaction); reads:
    ``app.recorder.select_notifications`` in pages of 1,000 + ``app.mapper.to_domain_event``
    (decrypts; eventsourcing restores an event's attributes without validating them);
    aggregates: ``app.repository.get(id)``. The first event of a stream is an
    ``Aggregate.Created`` subclass with the same six fields, as its aggregates need. It sets
    WAL on SQLite but not ``synchronous``; SQLite's default in WAL mode
    (``SQLITE_DEFAULT_WAL_SYNCHRONOUS``) is FULL on common builds, and `EventsourcingSession`
    checks that through eventsourcing's own connection and stops the run if it is not.
``raw``
    SQLAlchemy Core, no event store: a table with shredstore's event columns (stream id,
    version, event UUID, type, time) and a text payload as long as shredstore's stored
    payload and personal columns together, unique on (stream id, version). A batch is one
    ``conn.execute(insert, rows)`` (executemany) in one transaction, a single event one row
    per commit; reads are keyset pages of 1,000 rows, not decoded. The same SQLite pragmas
    (WAL, ``synchronous=FULL``) and the same PostgreSQL server.
"""

from __future__ import annotations

import base64
import contextlib
import json
import sqlite3
import tempfile
import uuid
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from eventsourcing.application import Application
from eventsourcing.cryptography import AESCipher
from eventsourcing.domain import Aggregate as EsAggregate
from eventsourcing.sqlite import SQLiteApplicationRecorder
from eventsourcing.utils import get_topic
from sqlalchemy.engine import Engine, make_url

from .contenders import Session, ShredstoreSession, expected_values
from .workload import EventSpec, Layout, Location, event_values, stream_id

__all__ = ["CONTENDERS", "EventsourcingSession", "RawSession", "raw_payload_size"]

PAGE = 1000
"""Events per page when eventsourcing and raw SQL read the whole log (shredstore's page)."""
_STREAMS = uuid.UUID("6f1c2a4e-9d0b-4c51-8e7a-3b2f5d6c7a80")
"""Namespace of the eventsourcing aggregate ids: uuid5(_STREAMS, "customer-<n>")."""


# --- eventsourcing -----------------------------------------------------------------------------

class EsCustomer(EsAggregate):
    """eventsourcing's customer: created by its first registration, then one per event."""

    class Registered(EsAggregate.Created):
        customer_id: str
        name: str
        email: str
        plan: str
        credit_limit: int
        registered_at: datetime

    class CustomerRegistered(EsAggregate.Event):
        customer_id: str
        name: str
        email: str
        plan: str
        credit_limit: int
        registered_at: datetime

        def apply(self, aggregate: Any) -> None:
            aggregate.register(self)

    def __init__(self, *, customer_id: str, name: str, email: str, plan: str, credit_limit: int,
                 registered_at: datetime) -> None:
        self.customer_id, self.name, self.email = customer_id, name, email
        self.plan, self.credit_limit, self.registered_at = plan, credit_limit, registered_at
        self.registrations = 1

    def register(self, event: EsCustomer.CustomerRegistered) -> None:
        self.customer_id, self.name, self.email = event.customer_id, event.name, event.email
        self.plan, self.credit_limit = event.plan, event.credit_limit
        self.registrations += 1


_ES_TOPIC = get_topic(EsCustomer)


def es_aggregate_id(customer: int) -> uuid.UUID:
    return uuid.uuid5(_STREAMS, stream_id(customer))


def _es_event(spec: EventSpec) -> Any:
    customer_id, name, email, plan, credit_limit, registered_at = event_values(spec)
    fields: dict[str, Any] = {"originator_id": es_aggregate_id(spec.customer),
              "originator_version": spec.version, "customer_id": customer_id, "name": name,
              "email": email, "plan": plan, "credit_limit": credit_limit,
              "registered_at": registered_at}
    if spec.version == 1:  # a stream starts with the event that creates the aggregate
        return EsCustomer.Registered(timestamp=EsCustomer.Registered.create_timestamp(),
                                     originator_topic=_ES_TOPIC, **fields)
    return EsCustomer.CustomerRegistered(
        timestamp=EsCustomer.CustomerRegistered.create_timestamp(), **fields)


def es_environment(location: Location, cipher_key: str) -> dict[str, str]:
    """eventsourcing's configuration for `location`, with its AESCipher."""
    env = {"CIPHER_TOPIC": "eventsourcing.cryptography:AESCipher", "CIPHER_KEY": cipher_key}
    if location.kind == "sqlite":
        return {**env, "PERSISTENCE_MODULE": "eventsourcing.sqlite",
                "SQLITE_DBNAME": location.sqlite_file("eventsourcing")}
    url = make_url(location.url)
    return {**env, "PERSISTENCE_MODULE": "eventsourcing.postgres",
            "POSTGRES_DBNAME": url.database or "", "POSTGRES_HOST": url.host or "localhost",
            "POSTGRES_PORT": str(url.port or 5432), "POSTGRES_USER": url.username or "",
            "POSTGRES_PASSWORD": url.password or "", "POSTGRES_SCHEMA": location.schema}


class EventsourcingSession(Session):
    name = "eventsourcing"
    label = "eventsourcing+AESCipher"
    has_snapshots = True

    def __init__(self, app: Application[uuid.UUID]) -> None:
        self.app = app
        if isinstance(app.recorder, SQLiteApplicationRecorder):
            with app.recorder.datastore.transaction(commit=False) as cursor:
                cursor.execute("PRAGMA synchronous")
                level = cursor.fetchone()[0]
                cursor.execute("PRAGMA journal_mode")
                mode = cursor.fetchone()[0]
            if (level, mode) != (2, "wal"):
                app.close()
                raise RuntimeError(f"eventsourcing's SQLite runs with synchronous={level}, "
                                   f"journal_mode={mode}; the comparison needs FULL (2), WAL")

    @classmethod
    def new_secret(cls) -> str:
        return AESCipher.create_key(32)

    @classmethod
    def open(cls, location: Location, secret: str, *,
             snapshots: bool = False) -> EventsourcingSession:
        env = es_environment(location, secret)
        if snapshots:
            env["IS_SNAPSHOTTING_ENABLED"] = "y"
        try:
            return cls(Application(env=env))
        except Exception as error:
            if "psycopg_pool" in str(error.__cause__):
                raise RuntimeError("eventsourcing on PostgreSQL needs psycopg_pool: "
                                   "pip install 'eventsourcing[postgres]==9.5.*'") from error
            raise

    def prepare(self, batches: Sequence[Any]) -> list[Any]:
        return [[_es_event(spec) for spec in batch.specs()] for batch in batches]

    def append(self, prepared: Any) -> None:
        self.app.save(*prepared)

    def read_all(self, limit: int | None = None) -> Iterator[Any]:
        recorder, to_domain_event = self.app.recorder, self.app.mapper.to_domain_event
        last, remaining = 0, limit
        while remaining is None or remaining > 0:
            size = PAGE if remaining is None else min(PAGE, remaining)
            page = recorder.select_notifications(last, size, inclusive_of_start=False)
            for notification in page:
                yield to_domain_event(notification)
            if len(page) < size:
                return
            last = page[-1].id
            if remaining is not None:
                remaining -= len(page)

    def matches(self, item: Any, spec: EventSpec, *, erased: bool = False) -> bool:
        return (item.originator_id, item.originator_version) == (
            es_aggregate_id(spec.customer), spec.version) and (
            item.customer_id, item.name, item.email, item.plan, item.credit_limit,
            item.registered_at) == expected_values(spec, erased=erased)

    def count(self) -> int:
        return self.app.recorder.max_notification_id() or 0

    def last_of(self, customer: int) -> Any:
        return next(iter(self.app.events.get(es_aggregate_id(customer), desc=True, limit=1)))

    def load(self, customer: int) -> Any:
        return self.app.repository.get(es_aggregate_id(customer))

    def snapshot(self, customer: int) -> None:
        self.app.take_snapshot(es_aggregate_id(customer))

    def snapshot_version(self, customer: int) -> int | None:
        if self.app.snapshots is None:
            return None
        found = list(self.app.snapshots.get(es_aggregate_id(customer), desc=True, limit=1))
        return found[0].originator_version if found else None

    def locate(self, item: Any) -> tuple[int, int]:
        customer = int(item.customer_id.removeprefix("C"))
        if item.originator_id != es_aggregate_id(customer):
            raise RuntimeError(f"{self.label}: event of {item.originator_id} names "
                               f"customer {customer}")
        return customer, item.originator_version

    def matches_aggregate(self, aggregate: Any, last: EventSpec) -> bool:
        values = event_values(last)
        return (aggregate.version, aggregate.registrations) == (last.version, last.version) and (
            aggregate.customer_id, aggregate.name, aggregate.email, aggregate.plan,
            aggregate.credit_limit) == values[:5]

    def close(self) -> None:
        self.app.close()


# --- raw SQLAlchemy Core -----------------------------------------------------------------------

_raw_metadata = sa.MetaData()
RAW_EVENTS = sa.Table(
    "raw_events",
    _raw_metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True,
              autoincrement=True),
    sa.Column("stream_id", sa.Text(), nullable=False),
    sa.Column("version", sa.Integer(), nullable=False),
    sa.Column("event_id", sa.Uuid(), nullable=False),
    sa.Column("event_type", sa.Text(), nullable=False),
    sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("payload", sa.Text(), nullable=False),
    sa.UniqueConstraint("stream_id", "version"),
)
_RAW_INSERT = RAW_EVENTS.insert()
_RAW_PAGE = sa.select(RAW_EVENTS).where(RAW_EVENTS.c.id > sa.bindparam("after")).order_by(
    RAW_EVENTS.c.id).limit(sa.bindparam("size"))
_RAW_STREAM = sa.select(RAW_EVENTS).where(
    RAW_EVENTS.c.stream_id == sa.bindparam("stream_id")).order_by(RAW_EVENTS.c.version)
_payload_size: int | None = None


def raw_payload_size() -> int:
    """Average characters of shredstore's stored payload + personal columns for this workload.

    Measured once, by appending 1,000 workload events to a throw-away SQLite store.
    """
    global _payload_size  # noqa: PLW0603  (computed once per process)
    if _payload_size is None:
        with tempfile.TemporaryDirectory(prefix="shredstore-compare-size-") as folder:
            location = Location("sqlite", folder=folder)
            session = ShredstoreSession.open(location, ShredstoreSession.new_secret())
            try:
                session.fill(Layout(1000, per_append=10, customers=100, first_customer=900))
            finally:
                session.close()
            with contextlib.closing(sqlite3.connect(location.sqlite_file("shredstore"))) as db:
                (size,) = db.execute("SELECT avg(length(payload) + length(personal)) "
                                     "FROM shredstore_events").fetchone()
        _payload_size = round(size)
    return _payload_size


def _raw_payload(spec: EventSpec, size: int) -> str:
    customer_id, name, email, plan, credit_limit, registered_at = event_values(spec)
    text = json.dumps({"customer_id": customer_id, "name": name, "email": email, "plan": plan,
                       "credit_limit": credit_limit,
                       "registered_at": registered_at.isoformat()}, separators=(",", ":"))
    filler = base64.b64encode(uuid.uuid5(_STREAMS, text).bytes * 16).decode()
    return (text + filler)[:max(size, len(text))]


def _raw_engine(location: Location) -> Engine:
    engine = sa.create_engine(location.sqlalchemy_url("raw"))
    if location.kind == "sqlite":
        @sa.event.listens_for(engine, "connect")
        def _pragmas(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=FULL")
            cursor.close()
    return engine


class RawSession(Session):
    name = "raw"
    label = "raw SQLAlchemy"

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.size = raw_payload_size()
        with engine.begin() as conn:
            _raw_metadata.create_all(conn)

    @classmethod
    def open(cls, location: Location, secret: str, *, snapshots: bool = False) -> RawSession:
        return cls(_raw_engine(location))

    def prepare(self, batches: Sequence[Any]) -> list[Any]:
        now = datetime.now(UTC)
        prepared = []
        for batch in batches:
            rows = [{"stream_id": stream_id(spec.customer), "version": spec.version,
                     "event_id": uuid.uuid4(), "event_type": "bench.CustomerRegistered",
                     "recorded_at": now, "payload": _raw_payload(spec, self.size)}
                    for spec in batch.specs()]
            prepared.append(rows[0] if len(rows) == 1 else rows)
        return prepared

    def append(self, prepared: Any) -> None:
        with self.engine.begin() as conn:
            conn.execute(_RAW_INSERT, prepared)

    def read_all(self, limit: int | None = None) -> Iterator[Any]:
        after, remaining = 0, limit
        while remaining is None or remaining > 0:
            size = PAGE if remaining is None else min(PAGE, remaining)
            with self.engine.connect() as conn:
                page = conn.execute(_RAW_PAGE, {"after": after, "size": size}).all()
            yield from page
            if len(page) < size:
                return
            after = page[-1].id
            if remaining is not None:
                remaining -= len(page)

    def matches(self, item: Any, spec: EventSpec, *, erased: bool = False) -> bool:
        return (item.stream_id, item.version, item.payload) == (
            stream_id(spec.customer), spec.version, _raw_payload(spec, self.size))

    def count(self) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(sa.select(sa.func.count()).select_from(RAW_EVENTS))
                       .scalar_one())

    def last_of(self, customer: int) -> Any:
        return self.load(customer)[-1]

    def load(self, customer: int) -> Any:
        with self.engine.connect() as conn:
            return conn.execute(_RAW_STREAM, {"stream_id": stream_id(customer)}).all()

    def matches_aggregate(self, aggregate: Any, last: EventSpec) -> bool:
        return len(aggregate) == last.version and self.matches(aggregate[-1], last)

    def locate(self, item: Any) -> tuple[int, int]:
        return int(item.stream_id.removeprefix("customer-")), item.version

    def close(self) -> None:
        self.engine.dispose()


CONTENDERS: dict[str, type[Session]] = {
    session.name: session for session in (ShredstoreSession, EventsourcingSession, RawSession)
}
"""The contenders by name, in the order the table shows them."""
