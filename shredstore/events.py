"""Domain events: the pydantic base class, the type-name registry, and events as read back.

Each `Event` subclass has a stable *type name* (the class name unless ``type_name=`` says
otherwise) and a *schema version* (``schema_version=``, default 1). Both are stored with every
event, so a stored record names its own type without the class that wrote it.
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, JsonValue

from shredstore.errors import ConfigurationError, UnknownEventType
from shredstore.personal import is_complete, plan_of
from shredstore.upcasting import Upcaster, Upcasters

__all__ = [
    "Event",
    "EventRegistry",
    "RecordedEvent",
    "UnknownEvent",
    "default_registry",
    "new_event_id",
    "recorded_event",
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
    """

    model_config = ConfigDict(frozen=True)

    __event_type__: ClassVar[str] = "Event"
    __schema_version__: ClassVar[int] = 1
    __keeps_redacted__: ClassVar[bool] = False
    """Whether an instance may hold `REDACTED` in personal fields: stored as a redacted group
    without a value, read back as `REDACTED` (a saga's step, whose state outlives an erasure).
    Other events refuse it: an erased value cannot be stored again."""

    event_id: UUID = Field(default_factory=new_event_id, exclude=True, repr=False)

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


class UnknownEvent(Event, register=False):
    """A stored event whose type name has no registered class, read as plain data.

    Its personal fields are opened, or `REDACTED` where their subject was erased.
    """

    type_name: str
    schema_version: int
    data: dict[str, Any]


@dataclass(frozen=True, slots=True)
class RecordedEvent:
    """An event as the log holds it: where it is, when it was written, and the event itself."""

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
    event: Event
    redacted_fields: frozenset[str] = frozenset()
    """The (dotted) fields whose subject was erased: they read as their replacement or REDACTED."""
    personal_fields: frozenset[str] = frozenset()
    """The (dotted) fields stored as personal data, as they were named when written."""


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
