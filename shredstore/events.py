"""Domain events: the pydantic base class, the type-name registry, and events as read back.

Each `Event` subclass has a stable *type name* (the class name unless ``type_name=`` says
otherwise) and a *schema version* (``schema_version=``, default 1). Both are stored with every
event, so a stored record names its own type without the class that wrote it.
"""

from __future__ import annotations

import itertools
import os
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar, Generic, Never
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, JsonValue

from shredstore.errors import ConfigurationError, UnexpectedEventType, UnknownEventType
from shredstore.personal import is_complete, plan_of
from shredstore.upcasting import Upcaster, Upcasters

if sys.version_info >= (3, 13):
    from typing import TypeVar
else:  # a type parameter's default (PEP 696) before Python 3.13
    from typing_extensions import TypeVar

__all__ = [
    "E",
    "E2",
    "E3",
    "Event",
    "EventClasses",
    "EventClassesOf",
    "EventRegistry",
    "RecordedEvent",
    "UnknownEvent",
    "default_registry",
    "check_event_classes",
    "checked_records",
    "new_event_id",
    "recorded_event",
    "selected_records",
    "upcaster",
]


class EventRegistry:
    """Maps stored type names to event classes.

    Every `Event` subclass registers itself in `default_registry` when it is defined. A second
    class that claims a type name already taken by a different class is refused at definition
    time; redefining the same class (same module and qualified name, as a reload does) replaces
    the old definition.
    """

    def __init__(self) -> None:
        self._classes: dict[str, type[Event]] = {}
        self._lock = threading.Lock()
        self.upcasters = Upcasters()

    def register(self, cls: type[Event]) -> None:
        """Register `cls` under its type name."""
        name = cls.__event_type__
        with self._lock:
            known = self._classes.get(name)
            if known is not None and _qualified(known) != _qualified(cls):
                raise ConfigurationError(
                    f"event type name {name!r} is already used by {_qualified(known)}; "
                    f"give {_qualified(cls)} its own name with `type_name=...`"
                )
            self._classes[name] = cls

    def get(self, type_name: str) -> type[Event]:
        """Return the class registered under `type_name`, or raise `UnknownEventType`."""
        try:
            return self._classes[type_name]
        except KeyError:
            raise UnknownEventType(f"no event class is registered as {type_name!r}") from None

    def find(self, type_name: str) -> type[Event] | None:
        """Return the class registered under `type_name`, or None."""
        return self._classes.get(type_name)

    def names_of(self, classes: EventClasses) -> list[str] | None:
        """The type names whose events read as instances of `classes` (a class or a tuple of
        them, subclasses included), or None where that is every stored event or cannot be
        told by name (`Event` itself; `UnknownEvent`, which is every unregistered name)."""
        check_event_classes(classes)
        wanted = classes if isinstance(classes, tuple) else (classes,)
        if any(issubclass(UnknownEvent, cls) or issubclass(cls, UnknownEvent)
               for cls in wanted):
            return None
        with self._lock:
            return [name for name, cls in self._classes.items() if issubclass(cls, classes)]

    def __contains__(self, type_name: object) -> bool:
        return type_name in self._classes

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._classes))


default_registry = EventRegistry()


def _qualified(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def new_event_id() -> UUID:
    """A new event id: a version 7 UUID (RFC 9562), the time in milliseconds followed by 74
    random bits (`os.urandom`; the standard library's `uuid.uuid7` where it has one).

    Time-ordered, so the log's unique index on event ids grows at its end: an append of 100
    events writes a few of its pages instead of up to a hundred, and that cost stays the same
    as the log grows (random ids made SQLite's write-ahead log per append of 100 grow from
    347 KiB at 5,000 events to 587 KiB at 50,000; these ids keep it at about 140 KiB). The id
    shows when the event was made, as its recorded time does.
    """
    if _STDLIB_UUID7 is not None:
        return _STDLIB_UUID7()
    random = int.from_bytes(os.urandom(10), "big")
    return UUID(int=(time.time_ns() // 1_000_000 & _MS_MASK) << 80 | _VERSION_7
                | (random >> 62 & 0xFFF) << 64 | _RFC_VARIANT | random & _RAND_B_MASK)


_STDLIB_UUID7: Callable[[], UUID] | None = getattr(uuid, "uuid7", None)
_MS_MASK = (1 << 48) - 1
_VERSION_7 = 7 << 76
_RFC_VARIANT = 0b10 << 62
_RAND_B_MASK = (1 << 62) - 1


class Event(BaseModel):
    """Base class of domain events: immutable pydantic models with a stable type name.

    ``class OrderPlaced(Event, type_name="order.placed", schema_version=2): ...``

    `event_id` identifies the event in the log. It is created with the instance (a
    time-ordered `new_event_id`, unless given), so appending the same instances again is
    recognised as a retry and stored once.

    An event is a fact with an identity: two events are equal when they are of the same class
    with the same fields *and the same* `event_id` (two deposits of 10 are two facts, and a
    set of events keeps both); the hash agrees. An event read back is equal to the instance
    that was appended (its id is stored with it). To compare with an event built afresh, give
    it the id (``Cls(..., event_id=record.event_id)``) or compare ``model_dump()``, which
    leaves the id out. The repr shows the id last, so two unequal events never print alike.
    """

    model_config = ConfigDict(frozen=True)

    __event_type__: ClassVar[str] = "Event"
    __schema_version__: ClassVar[int] = 1
    __keeps_redacted__: ClassVar[bool] = False
    """Whether an instance may hold `REDACTED` in personal fields: stored as a redacted group
    without a value, read back as `REDACTED` (a saga's step, whose state outlives an erasure).
    Other events refuse it: an erased value cannot be stored again."""

    event_id: UUID = Field(default_factory=new_event_id, exclude=True, repr=False)
    """Not in ``model_dump()`` (the payload); in the repr, after the fields (`__repr_args__`)."""

    @classmethod
    def __pydantic_init_subclass__(
        cls,
        *,
        type_name: str | None = None,
        schema_version: int | None = None,
        register: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        if type_name is not None:
            if not type_name.strip():
                raise ConfigurationError(f"{cls.__qualname__}: type_name must not be blank")
            cls.__event_type__ = type_name
        elif "__event_type__" not in cls.__dict__:
            cls.__event_type__ = cls.__name__
        if schema_version is not None:
            if isinstance(schema_version, bool) or schema_version < 1:
                raise ConfigurationError(
                    f"{cls.__qualname__}: schema_version must be a positive int"
                )
            cls.__schema_version__ = schema_version
        if is_complete(cls):
            plan_of(cls)  # an unresolvable personal-data declaration fails here, at definition
        # else: forward references are pending; plan_of checks at first use, after rebuild
        if register:
            default_registry.register(cls)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        # The class keywords are handled in __pydantic_init_subclass__, once the model is built.
        for option in ("type_name", "schema_version", "register"):
            kwargs.pop(option, None)
        super().__init_subclass__(**kwargs)

    def __repr_args__(self) -> Iterator[tuple[str | None, Any]]:
        # The event's data first, its identity last: part of equality, so part of the repr.
        yield from super().__repr_args__()
        yield "event_id", self.event_id


class UnknownEvent(Event, register=False):
    """A stored event whose type name has no registered class, read as plain data.

    Its personal fields are opened, or `REDACTED` where their subject was erased.
    """

    type_name: str
    schema_version: int
    data: dict[str, Any]


_E_co = TypeVar("_E_co", bound=Event, default=Event, covariant=True)

E = TypeVar("E", bound=Event, default=Event)
E2 = TypeVar("E2", bound=Event, default=Never)
E3 = TypeVar("E3", bound=Event, default=Never)

EventClassesOf = type[E] | tuple[type[E]] | tuple[type[E], type[E2]] | tuple[
    type[E], type[E2], type[E3]]
"""The reads' ``of=``, typed: a class, or a tuple of up to three, whose records are typed
``RecordedEvent[E | E2 | E3]`` (without ``of=``: ``RecordedEvent[Event]``, E's default).
One generic signature, not overloads: with pydantic's mypy plugin, overloads made a list of
classes given to ``types=`` an error. A longer tuple works at run time; to the type checker,
name a base class instead."""

EventClasses = type[Event] | tuple[type[Event], ...]
"""What ``of=`` takes at run time: an event class, or a tuple of them (as `isinstance`)."""


@dataclass(frozen=True, slots=True)
class RecordedEvent(Generic[_E_co]):
    """An event as the log holds it: where it is, when it was written, and the event itself.

    ``RecordedEvent[CustomerRegistered]`` is a record whose `event` is a `CustomerRegistered`
    (what the reads' ``of=`` return); a bare `RecordedEvent` is ``RecordedEvent[Event]``.
    """

    position: int
    """Global position in the log: increases in commit order, without gaps."""
    stream_id: str
    version: int
    """Position within the stream: 1 for the stream's first event, without gaps."""
    event_id: UUID
    event_type: str
    schema_version: int
    recorded_at: datetime
    metadata: Mapping[str, JsonValue]
    event: _E_co
    redacted_fields: frozenset[str] = frozenset()
    """The (dotted) fields whose subject was erased: they read as their replacement or REDACTED."""
    personal_fields: frozenset[str] = frozenset()
    """The (dotted) fields stored as personal data, as they were named when written."""


def checked_records(records: Iterator[RecordedEvent], of: EventClasses, *, stream_id: str
                    ) -> Iterator[RecordedEvent[Any]]:
    """`records` (of one stream), each checked to be an instance of `of`: `read_stream`'s
    ``of=``. An event that is not raises `UnexpectedEventType` when it is reached."""
    check_event_classes(of)
    return _checked(records, of, stream_id)


def _checked(records: Iterator[RecordedEvent], of: EventClasses, stream_id: str
             ) -> Iterator[RecordedEvent[Any]]:
    for record in records:
        if not isinstance(record.event, of):
            raise _unexpected(record, of, stream_id)
        yield record


def selected_records(records: Iterator[RecordedEvent], of: EventClasses,
                     limit: int | None = None) -> Iterator[RecordedEvent[Any]]:
    """The records of `records` whose event is an instance of `of`, at most `limit` of them:
    the ``of=`` of `read_all` and `read_subject`."""
    check_event_classes(of)
    selected = (record for record in records if isinstance(record.event, of))
    return selected if limit is None else itertools.islice(selected, limit)


def check_event_classes(of: object) -> None:
    """Refuse an ``of=`` that is not an `Event` class or a non-empty tuple of them, when the
    read is called (not at its first event)."""
    classes = of if isinstance(of, tuple) else (of,)
    if not classes or not all(isinstance(cls, type) and issubclass(cls, Event)
                              for cls in classes):
        # Its type, not its value: an event given by mistake would show its fields.
        raise ConfigurationError("of= takes an Event class or a non-empty tuple of them, "
                                 f"not a {type(of).__qualname__}")


def _unexpected(record: RecordedEvent, of: EventClasses, stream_id: str) -> UnexpectedEventType:
    wanted = " or ".join(cls.__qualname__ for cls in (of if isinstance(of, tuple) else (of,)))
    return UnexpectedEventType(
        f"stream {stream_id!r} holds a {record.event_type!r} event "
        f"({type(record.event).__qualname__}) at version {record.version} (position "
        f"{record.position}), not a {wanted} as the read's of= expects; widen of= (a tuple, or "
        "a base class of the stream's events) or read without it")


def upcaster(
    target: str | type[Any],
    *,
    from_version: int,
    registry: EventRegistry | None = None,
) -> Callable[[Upcaster], Upcaster]:
    """Register the decorated function to lift stored data of `target` by one schema version.

    `target` is an event class, an aggregate class (for its snapshots) or a stored type name.
    The function takes the stored data (a dict) and returns the data of the next version::

        @upcaster(CustomerRegistered, from_version=1)
        def _split_name(data):
            data["full_name"] = data.pop("name")
            return data
    """
    name = target if isinstance(target, str) else getattr(target, "__stored_type__", None)
    if name is None and isinstance(target, type):
        name = getattr(target, "__event_type__", None)
    if not isinstance(name, str):
        raise ConfigurationError(f"cannot tell the stored type name of {target!r}")
    chosen = registry if registry is not None else default_registry

    def register(function: Upcaster) -> Upcaster:
        chosen.upcasters.add(name, from_version, function)
        return function

    return register


def _recorded_factory() -> Callable[..., RecordedEvent]:
    """A `RecordedEvent` maker for the read path: the slots set directly, without the frozen
    dataclass's ``__init__`` (which sets each field through ``object.__setattr__``); half the
    cost of a read's most frequent object. Every field is given, positionally."""
    slots = vars(RecordedEvent)
    (position, stream_id, version, event_id, event_type, schema_version, recorded_at,
     metadata, event, redacted_fields, personal_fields) = (
        slots[name].__set__ for name in (
            "position", "stream_id", "version", "event_id", "event_type", "schema_version",
            "recorded_at", "metadata", "event", "redacted_fields", "personal_fields"))
    new = object.__new__

    def recorded_event(  # noqa: PLR0917 (the dataclass's own positional order)
        position_: int, stream_id_: str, version_: int, event_id_: UUID, event_type_: str,
        schema_version_: int, recorded_at_: datetime, metadata_: Mapping[str, JsonValue],
        event_: Event, redacted_fields_: frozenset[str], personal_fields_: frozenset[str],
    ) -> RecordedEvent:
        made: RecordedEvent = new(RecordedEvent)
        position(made, position_)
        stream_id(made, stream_id_)
        version(made, version_)
        event_id(made, event_id_)
        event_type(made, event_type_)
        schema_version(made, schema_version_)
        recorded_at(made, recorded_at_)
        metadata(made, metadata_)
        event(made, event_)
        redacted_fields(made, redacted_fields_)
        personal_fields(made, personal_fields_)
        return made

    return recorded_event


recorded_event = _recorded_factory()
"""`RecordedEvent(...)` with all eleven fields given positionally, built faster (reads)."""
