"""Aggregates (state rebuilt from events) and the repository that loads and saves them.

::

    class Customer(Aggregate, stream_prefix="customer-"):
        customer_id: SubjectId = ""
        name: Annotated[str, PersonalData()] = ""
        orders: int = 0

        def apply(self, event: Event) -> None:
            match event:
                case CustomerRegistered():
                    self.customer_id, self.name = event.customer_id, event.name
                case OrderPlaced():
                    self.orders += 1

    customers = Repository(store, Customer, snapshot_every=50)
    customer = Customer(id="42")
    customer.record(CustomerRegistered(customer_id="42", name="Alice"))
    customers.save(customer)
    customers.update("42", lambda c: c.record(OrderPlaced(...)))   # retried on conflicts

State fields are declared like event fields, so personal data in state is sealed in snapshots
and redacted after erasure exactly as in events. `apply` must accept `REDACTED` values.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, ClassVar, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, PrivateAttr

from keyvault import KeyVaultError
from shredstore.errors import (
    AggregateNotFound,
    ConfigurationError,
    ShredstoreError,
    WrongExpectedVersion,
)
from shredstore.events import Event
from shredstore.personal import is_complete, plan_of
from shredstore.storage.log import AppendResult
from shredstore.store import EventStore

__all__ = ["Aggregate", "Repository"]

A = TypeVar("A", bound="Aggregate")
_log = logging.getLogger("shredstore.aggregates")


class Aggregate(BaseModel):
    """State rebuilt by applying events, with new events recorded as pending until saved.

    Class keywords: ``stream_prefix`` (default: the lower-cased class name and "-"),
    ``type_name`` and ``schema_version`` (name and version of its snapshots).
    """

    model_config = ConfigDict(validate_assignment=False, extra="forbid")

    __stream_prefix__: ClassVar[str] = "aggregate-"
    __stored_type__: ClassVar[str] = "snapshot:Aggregate"
    __schema_version__: ClassVar[int] = 1

    id: str
    version: int = 0
    """The version of the last stored event applied (0: nothing stored yet)."""

    _pending: list[Event] = PrivateAttr(default_factory=list)

    @classmethod
    def __pydantic_init_subclass__(
        cls,
        *,
        stream_prefix: str | None = None,
        type_name: str | None = None,
        schema_version: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        cls.__stream_prefix__ = (stream_prefix if stream_prefix is not None
                                 else f"{cls.__name__.lower()}-")
        cls.__stored_type__ = f"snapshot:{type_name or cls.__name__}"
        if schema_version is not None:
            if isinstance(schema_version, bool) or schema_version < 1:
                raise ConfigurationError(
                    f"{cls.__qualname__}: schema_version must be a positive int")
            cls.__schema_version__ = schema_version
        if is_complete(cls):
            plan_of(cls)  # unresolvable personal-data declarations fail at definition

    def __init_subclass__(cls, **kwargs: Any) -> None:
        for option in ("stream_prefix", "type_name", "schema_version"):
            kwargs.pop(option, None)
        super().__init_subclass__(**kwargs)

    @property
    def stream_id(self) -> str:
        return f"{self.__stream_prefix__}{self.id}"

    @property
    def pending(self) -> tuple[Event, ...]:
        """Events recorded since the aggregate was loaded or saved."""
        return tuple(self._pending)

    def apply(self, event: Event) -> None:
        """Change the state by one event. Subclasses implement it; it must not fail."""
        raise NotImplementedError(f"{type(self).__qualname__} must implement apply(event)")

    def record(self, event: Event) -> None:
        """Apply a new event and keep it to be saved."""
        self.apply(event)
        self._pending.append(event)


class Repository(Generic[A]):
    """Loads aggregates from their streams and saves their new events.

    With `snapshot_every=N`, a snapshot is written whenever a save crosses a multiple of N
    events, and loading starts from the newest snapshot. Snapshots are a cache: one that no
    longer fits the class (a schema change without an upcaster) is ignored.
    """

    def __init__(
        self, store: EventStore, aggregate: type[A], *, snapshot_every: int | None = None
    ) -> None:
        if snapshot_every is not None and (
            isinstance(snapshot_every, bool) or not isinstance(snapshot_every, int)
            or snapshot_every < 1
        ):
            raise ConfigurationError("snapshot_every must be a positive int or None")
        self._store = store
        self._class = aggregate
        self._snapshot_every = snapshot_every

    def load(self, aggregate_id: str, *, use_snapshots: bool = True) -> A:
        """The aggregate as its events make it; AggregateNotFound if it has none."""
        cls = self._class
        stream_id = f"{cls.__stream_prefix__}{aggregate_id}"
        aggregate = None
        if use_snapshots:
            # The snapshot and the first events after it, in one transaction.
            state, records = self._store.load_with_snapshot(
                cls, stream_id, type_name=cls.__stored_type__,
                schema_version=cls.__schema_version__)
            aggregate = state if isinstance(state, cls) else None
            if state is not None and aggregate is None:  # not this class: replay it all
                records = self._store.read_stream(stream_id)
        else:
            records = self._store.read_stream(stream_id)
        if aggregate is None:
            aggregate = cls(id=aggregate_id)
        for record in records:
            aggregate.apply(record.event)
            aggregate.version = record.version
        if aggregate.version == 0:
            raise AggregateNotFound(f"no events are stored for {stream_id!r}")
        return aggregate

    def save(self, aggregate: A) -> AppendResult:
        """Append the pending events, expecting the stream to be where it was loaded.

        Raises WrongExpectedVersion if another writer got there first; nothing is written.
        """
        before = aggregate.version
        result = self._store.append(aggregate.stream_id, aggregate.pending,
                                    expected_version=before)
        aggregate._pending.clear()  # the repository owns the unit of work
        aggregate.version = result.version
        every = self._snapshot_every
        if every is not None and result.version // every > before // every:
            self._snapshot(aggregate)
        return result

    def _snapshot(self, aggregate: A) -> None:
        # The events are committed: a snapshot that cannot be taken must not make the save
        # look failed (a caller would run its command again). The next crossing tries again.
        try:
            self._store.save_snapshot(aggregate, stream_id=aggregate.stream_id,
                                      version=aggregate.version,
                                      type_name=aggregate.__stored_type__,
                                      schema_version=aggregate.__schema_version__)
        except (ShredstoreError, KeyVaultError) as error:
            _log.warning("no snapshot of %s at version %d: %s: %s", type(aggregate).__qualname__,
                         aggregate.version, type(error).__name__, error)

    def update(
        self,
        aggregate_id: str,
        command: Callable[[A], None],
        *,
        retries: int = 3,
        create: bool = False,
    ) -> A:
        """Load, run `command` (which records events), save; on a conflict, all again.

        With ``create=True`` a missing aggregate starts empty. Tries at most ``retries + 1``
        times, then raises the last WrongExpectedVersion.
        """
        attempt = 0
        while True:
            try:
                aggregate = self.load(aggregate_id)
            except AggregateNotFound:
                if not create:
                    raise
                aggregate = self._class(id=aggregate_id)
            command(aggregate)
            try:
                self.save(aggregate)
            except WrongExpectedVersion:
                attempt += 1
                if attempt > retries:
                    raise
                continue
            return aggregate
