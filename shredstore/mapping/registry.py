"""The registry step: an event to the class it is stored under (its type name and schema
version); and back: a stored type name to the class that reads it, if any.

Only instances of the class registered for their type name are stored, so that every stored
record names a class its readers can find; a record of a type no class is registered for
reads as `UnknownEvent`, and one written by a newer schema version than its class is refused.
"""

from __future__ import annotations

from shredstore.errors import ConfigurationError, EventDecodingError
from shredstore.events import Event, EventRegistry, UnknownEvent

__all__ = ["class_for", "registered_class"]


def registered_class(registry: EventRegistry, event: Event) -> type[Event]:
    """The class `event` is stored under; `ConfigurationError` unless it is the class
    registered for its type name."""
    cls = type(event)
    if not isinstance(event, Event) or isinstance(event, UnknownEvent):
        raise ConfigurationError(
            f"only instances of registered Event classes can be appended, not {cls.__name__}"
        )
    if registry.find(cls.__event_type__) is not cls:
        raise ConfigurationError(
            f"{cls.__qualname__} is not the class registered as {cls.__event_type__!r}; "
            "events of unregistered classes could not be read back"
        )
    return cls


def class_for(registry: EventRegistry, event_type: str, schema_version: int, where: object
              ) -> type[Event] | None:
    """The class that reads records of `event_type`, or None where none is registered;
    `EventDecodingError` if the record's schema version is newer than the class's."""
    cls = registry.find(event_type)
    if cls is not None and schema_version > cls.__schema_version__:
        raise EventDecodingError(
            f"{where} is {event_type!r} schema version {schema_version}, newer "
            f"than {cls.__qualname__} (version {cls.__schema_version__}); "
            "upgrade the application"
        )
    return cls
