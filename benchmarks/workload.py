"""The comparison's workload and databases: what is appended where, and fresh places to put it.

Every contender stores the same events in the same streams. Event number ``n`` of customer
``c`` has six fields: the subject id ``C<c>``, a name and an email (personal data), a plan, a
credit limit and a registration time (the last three vary with ``n``). A stream is one customer:
``customer-<c>`` (eventsourcing: the UUID5 of that name, its aggregate id).

`Layout` says which append carries which events: append ``i`` goes to customer
``i % customers`` and carries ``per_append`` consecutive versions of that stream. Single-event
appends therefore visit the 1,000 streams round-robin (10,000 appends: 10 events a stream);
appends of 100 give each customer one batch per 100,000 events.
"""

from __future__ import annotations

import contextlib
import sqlite3
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal, NamedTuple

import sqlalchemy as sa
from sqlalchemy.engine import URL, Engine, make_url

from .common import DEFAULT_POSTGRES_URL, POSTGRES_URL_ENV

__all__ = [
    "CUSTOMERS",
    "DEFAULT_POSTGRES_URL",
    "POSTGRES_URL_ENV",
    "Backend",
    "Batch",
    "EventSpec",
    "Layout",
    "Location",
    "event_values",
    "postgres_backend",
    "sqlite_backend",
    "stream_id",
    "subject_id",
]

CUSTOMERS = 1000
"""Distinct customers (data subjects, streams) of the append and read cases."""

_PLANS = ("free", "team", "business", "enterprise")
_EPOCH = datetime(2024, 1, 1, tzinfo=UTC)
_SCHEMA_PREFIX = "cmp_"


class EventSpec(NamedTuple):
    """One event of the workload: its customer, its version in that stream, its number."""

    customer: int
    version: int
    number: int


def subject_id(customer: int) -> str:
    return f"C{customer:06d}"


def stream_id(customer: int) -> str:
    return f"customer-{customer}"


def event_values(spec: EventSpec) -> tuple[str, str, str, str, int, datetime]:
    """The six field values of an event: customer id, name, email, plan, limit, time."""
    customer, _, number = spec
    return (
        subject_id(customer),
        f"Customer Number {customer}",
        f"customer.{customer}@example.com",
        _PLANS[number % len(_PLANS)],
        1_000 + (number % 97) * 250,
        _EPOCH + timedelta(seconds=number),
    )


@dataclass(frozen=True, slots=True)
class Batch:
    """One append: `size` consecutive versions of one customer's stream."""

    customer: int
    first_version: int
    first_number: int
    size: int

    def specs(self) -> list[EventSpec]:
        return [EventSpec(self.customer, self.first_version + j, self.first_number + j)
                for j in range(self.size)]


@dataclass(frozen=True, slots=True)
class Layout:
    """`events` events in appends of `per_append`, to customers round-robin."""

    events: int
    per_append: int
    customers: int = CUSTOMERS
    first_customer: int = 0

    def __post_init__(self) -> None:
        if self.per_append < 1 or self.events % self.per_append:
            raise ValueError(f"{self.events} events do not split into appends of "
                             f"{self.per_append}")

    @property
    def appends(self) -> int:
        return self.events // self.per_append

    def batch(self, i: int) -> Batch:
        customer = self.first_customer + i % self.customers
        first_version = (i // self.customers) * self.per_append + 1
        return Batch(customer, first_version, i * self.per_append, self.per_append)

    def batches(self, start: int = 0, stop: int | None = None) -> list[Batch]:
        """Appends ``start`` to ``stop`` (default: all)."""
        return [self.batch(i) for i in range(start, self.appends if stop is None else stop)]

    def event_at(self, k: int) -> EventSpec:
        """The `k`-th event appended (0-based): what a read in log order meets `k`-th."""
        batch = self.batch(k // self.per_append)
        offset = k % self.per_append
        return EventSpec(batch.customer, batch.first_version + offset,
                         batch.first_number + offset)

    def to_json(self) -> dict[str, int]:
        return asdict(self)


# --- databases ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Location:
    """An empty place for one contender's log: an SQLite folder or a PostgreSQL schema."""

    kind: Literal["sqlite", "postgres"]
    folder: str = ""
    """SQLite: the folder that holds the contender's database file."""
    url: str = ""
    """PostgreSQL: the server's URL (without a schema)."""
    schema: str = ""

    def sqlite_file(self, name: str) -> str:
        return str(Path(self.folder) / f"{name}.db")

    def sqlalchemy_url(self, name: str) -> URL:
        """The URL of this location for an SQLAlchemy engine (tables in `schema`)."""
        if self.kind == "sqlite":
            return make_url(f"sqlite:///{self.sqlite_file(name)}")
        return make_url(self.url).update_query_dict({"options": f"-csearch_path={self.schema}"})

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Location:
        return cls(**data)


@dataclass(frozen=True, slots=True)
class Backend:
    """A database kind and how to get a fresh `Location` on it (removed afterwards)."""

    name: str
    description: str
    admin: Engine | None = None
    """PostgreSQL: an AUTOCOMMIT engine that creates and drops schemas."""
    url: str = ""

    @contextlib.contextmanager
    def fresh(self) -> Iterator[Location]:
        if self.admin is None:
            with tempfile.TemporaryDirectory(prefix="shredstore-compare-") as folder:
                yield Location("sqlite", folder=folder)
            return
        schema = f"{_SCHEMA_PREFIX}{uuid.uuid4().hex[:12]}"
        with self.admin.connect() as conn:
            conn.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
        try:
            yield Location("postgres", url=self.url, schema=schema)
        finally:
            with self.admin.connect() as conn:
                conn.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')

    def leftovers(self) -> list[str]:
        """Schemas of ours still on the server (there should be none)."""
        if self.admin is None:
            return []
        with self.admin.connect() as conn:
            rows = conn.execute(sa.text(
                "SELECT nspname FROM pg_namespace WHERE nspname LIKE :prefix"),
                {"prefix": f"{_SCHEMA_PREFIX}%"})
            return [name for (name,) in rows]

    def dispose(self) -> None:
        if self.admin is not None:
            self.admin.dispose()


def sqlite_backend() -> Backend:
    return Backend("sqlite", f"SQLite {sqlite3.sqlite_version} (file, WAL, synchronous=FULL)")


def postgres_backend(url: str) -> Backend:
    """A PostgreSQL backend; raises `sa.exc.OperationalError` if the server is unreachable."""
    parsed = make_url(url)
    if parsed.get_backend_name() in ("postgres", "postgresql"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    admin = sa.create_engine(parsed, isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)
    with admin.connect() as conn:
        version = conn.exec_driver_sql("SHOW server_version").scalar_one()
        fsync = conn.exec_driver_sql("SHOW fsync").scalar_one()
        sync_commit = conn.exec_driver_sql("SHOW synchronous_commit").scalar_one()
    return Backend(
        "postgres",
        f"PostgreSQL {version} (fsync={fsync}, synchronous_commit={sync_commit})",
        admin=admin,
        url=parsed.render_as_string(hide_password=False),
    )
