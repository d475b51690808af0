"""The contender interface, and shredstore as a contender.

Each contender (here shredstore; eventsourcing and raw SQLAlchemy in `benchmarks.peers`) sits
behind the same small `Session` interface: prepare appends untimed, append one batch, read the
whole log, load an aggregate, and check what was read.

``shredstore``
    `EventStore` with a master key, its key vault in the same database; personal fields
    sealed per subject. Appends: ``store.append(stream, events, expected_version=v)``; reads:
    ``store.read_all()`` (decrypted, validated pydantic models); aggregates:
    ``Repository(store, Customer).load(id)``; erasure: ``store.erase_subject(subject)``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Annotated, Any, ClassVar

import shredstore
from keyvault import MasterKey
from shredstore import REDACTED, EventStore, PersonalData, Repository, SubjectId, erasure

from .workload import EventSpec, Layout, Location, event_values, stream_id, subject_id

__all__ = ["Customer", "CustomerRegistered", "Session", "ShredstoreSession",
           "expected_values"]

class Session(ABC):
    """One contender on one fresh location. Build inputs with `prepare`, then time `append`."""

    name: ClassVar[str]
    label: ClassVar[str]
    has_snapshots: ClassVar[bool] = False
    """Whether `snapshot` and `snapshot_version` work (the snapshot case runs only these)."""

    @classmethod
    def new_secret(cls) -> str:
        """A new key for a new log (master key, cipher key), as text."""
        return ""

    @classmethod
    @abstractmethod
    def open(cls, location: Location, secret: str, *, snapshots: bool = False) -> Session:
        """The contender on `location`; with `snapshots`, configured to store and use
        snapshots of aggregates (where that is a setting)."""

    @abstractmethod
    def prepare(self, batches: Sequence[Any]) -> list[Any]:
        """The appends of `batches` (`workload.Batch`) in this contender's own terms."""

    @abstractmethod
    def append(self, prepared: Any) -> None:
        """One append of a prepared batch: one transaction."""

    @abstractmethod
    def read_all(self, limit: int | None = None) -> Iterator[Any]:
        """The whole log in order (or its first `limit` events), decoded as the contender does."""

    @abstractmethod
    def matches(self, item: Any, spec: EventSpec, *, erased: bool = False) -> bool:
        """Whether an item read is the event `spec` (decrypted, or redacted if `erased`)."""

    @abstractmethod
    def count(self) -> int:
        """Events stored."""

    @abstractmethod
    def last_of(self, customer: int) -> Any:
        """The last event of a customer's stream, read back as `read_all` yields it."""

    @abstractmethod
    def load(self, customer: int) -> Any:
        """The customer as the contender rebuilds it from its stream."""

    @abstractmethod
    def matches_aggregate(self, aggregate: Any, last: EventSpec) -> bool:
        """Whether a loaded aggregate folded every event of its stream, up to `last`."""

    def snapshot(self, customer: int) -> None:
        """Take a snapshot of the customer's aggregate as it now stands (untimed); only for
        contenders with `has_snapshots`."""
        raise TypeError(f"{self.label} keeps no snapshots (has_snapshots is False)")

    def snapshot_version(self, customer: int) -> int | None:
        """The version of the customer's newest usable snapshot (None: none); only for
        contenders with `has_snapshots`."""
        raise TypeError(f"{self.label} keeps no snapshots (has_snapshots is False)")

    @abstractmethod
    def locate(self, item: Any) -> tuple[int, int]:
        """The (customer, version) of an item `read_all` yielded."""

    def erase(self, customer: int) -> None:
        raise NotImplementedError(f"{self.label} has no per-subject erasure")

    def scrub(self) -> None:
        """Settle the database before timed erasures."""
        raise NotImplementedError(f"{self.label} has no per-subject erasure")

    def is_erased(self, customer: int) -> bool:
        raise NotImplementedError(f"{self.label} has no per-subject erasure")

    @abstractmethod
    def close(self) -> None: ...

    def fill(self, layout: Layout, *, chunk: int = 1000, start: int = 0,
             stop: int | None = None) -> None:
        """Append the layout's appends `start` to `stop` (default: all; untimed), preparing
        `chunk` appends at a time."""
        stop = layout.appends if stop is None else stop
        for first in range(start, stop, chunk):
            for prepared in self.prepare(layout.batches(first, min(first + chunk, stop))):
                self.append(prepared)


# --- shredstore --------------------------------------------------------------------------------


class CustomerRegistered(shredstore.Event, type_name="bench.CustomerRegistered"):
    """The workload's event; name and email are the subject's personal data."""

    customer_id: SubjectId
    name: Annotated[str, PersonalData()]
    email: Annotated[str, PersonalData()]
    plan: str
    credit_limit: int
    registered_at: datetime


class Customer(shredstore.Aggregate, stream_prefix="customer-", type_name="bench.Customer"):
    """A customer folded from its CustomerRegistered events."""

    customer_id: SubjectId = ""
    name: Annotated[str, PersonalData()] = ""
    email: Annotated[str, PersonalData()] = ""
    plan: str = ""
    credit_limit: int = 0
    registrations: int = 0

    def apply(self, event: shredstore.Event) -> None:
        if isinstance(event, CustomerRegistered):
            self.customer_id, self.name, self.email = event.customer_id, event.name, event.email
            self.plan, self.credit_limit = event.plan, event.credit_limit
            self.registrations += 1


def _shredstore_event(spec: EventSpec) -> CustomerRegistered:
    customer_id, name, email, plan, credit_limit, registered_at = event_values(spec)
    return CustomerRegistered(customer_id=customer_id, name=name, email=email, plan=plan,
                              credit_limit=credit_limit, registered_at=registered_at)


def expected_values(spec: EventSpec, *, erased: bool) -> tuple[Any, ...]:
    """The six values a read must show for `spec` (personal ones REDACTED if `erased`)."""
    values = event_values(spec)
    return (values[0], REDACTED, REDACTED, *values[3:]) if erased else values


class ShredstoreSession(Session):
    name = "shredstore"
    label = "shredstore"
    has_snapshots = True

    def __init__(self, store: EventStore) -> None:
        self.store = store
        self.customers = Repository(store, Customer)

    @classmethod
    def new_secret(cls) -> str:
        return MasterKey.generate().to_base64()

    @classmethod
    def open(cls, location: Location, secret: str, *,
             snapshots: bool = False) -> ShredstoreSession:
        # Repository.load always starts from the newest snapshot if there is one: no setting.
        return cls(EventStore(location.sqlalchemy_url("shredstore"),
                              master_key=MasterKey.from_base64(secret)))

    def prepare(self, batches: Sequence[Any]) -> list[Any]:
        return [(stream_id(batch.customer), [_shredstore_event(s) for s in batch.specs()],
                 batch.first_version - 1) for batch in batches]

    def append(self, prepared: Any) -> None:
        stream, events, expected_version = prepared
        self.store.append(stream, events, expected_version=expected_version)

    def read_all(self, limit: int | None = None) -> Iterator[Any]:
        # The application's events: after erasures the log also holds the ledger's entries.
        return self.store.read_all(limit=limit, types=[CustomerRegistered])

    def matches(self, item: Any, spec: EventSpec, *, erased: bool = False) -> bool:
        event = item.event
        return (item.stream_id, item.version) == (stream_id(spec.customer), spec.version) and (
            event.customer_id, event.name, event.email, event.plan, event.credit_limit,
            event.registered_at) == expected_values(spec, erased=erased)

    def count(self) -> int:
        return self.store.head().position

    def last_of(self, customer: int) -> Any:
        return next(self.store.read_stream(stream_id(customer), backwards=True, limit=1))

    def load(self, customer: int) -> Any:
        return self.customers.load(str(customer))

    def snapshot(self, customer: int) -> None:
        """The aggregate as loaded, stored as its snapshot the way `Repository` stores one
        (``store.save_snapshot`` with the class's snapshot type and schema version)."""
        aggregate = self.customers.load(str(customer), use_snapshots=False)
        self.store.save_snapshot(aggregate, stream_id=aggregate.stream_id,
                                 version=aggregate.version, type_name=Customer.__stored_type__,
                                 schema_version=Customer.__schema_version__)

    def snapshot_version(self, customer: int) -> int | None:
        state = self.store.load_snapshot(Customer, stream_id(customer),
                                         type_name=Customer.__stored_type__,
                                         schema_version=Customer.__schema_version__)
        return None if state is None else state.version

    def locate(self, item: Any) -> tuple[int, int]:
        return int(item.stream_id.removeprefix("customer-")), item.version

    def matches_aggregate(self, aggregate: Any, last: EventSpec) -> bool:
        values = event_values(last)
        return (aggregate.version, aggregate.registrations) == (last.version, last.version) and (
            aggregate.customer_id, aggregate.name, aggregate.email, aggregate.plan,
            aggregate.credit_limit) == values[:5]

    def erase(self, customer: int) -> Any:
        """The erasure itself (key destroyed, ledger entry): `erasure.shred`."""
        return erasure.shred(self.store, subject_id(customer), reason="benchmark")

    def receipt(self, shredded: Any) -> Any:
        """The receipt's evidence for an erasure: `erasure.receipt_for`."""
        return erasure.receipt_for(self.store, shredded)

    def is_erased(self, customer: int) -> bool:
        return self.store.subject_status(subject_id(customer)).state == "erased"

    def scrub(self) -> None:
        """Empty the SQLite WAL; PostgreSQL: VACUUM FULL the key table and checkpoint."""
        self.store.vault.scrub()

    def close(self) -> None:
        self.store.close()


