"""Turns event models into stored rows and stored rows back into models.

Payloads are the JSON of the model (pydantic's own serialiser); the event id lives in its
column, not in the payload. Reading never needs the class that wrote an event: an unknown
type name reads as an `UnknownEvent` holding the data.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pydantic_core
from pydantic import JsonValue, ValidationError

from shredstore.errors import ConfigurationError, EventDecodingError
from shredstore.events import Event, EventRegistry, RecordedEvent, UnknownEvent
from shredstore.storage.chain import StoredRow
from shredstore.storage.log import NewRow

__all__ = ["EventMapper"]

_EMPTY_METADATA = "{}"


class EventMapper:
    """Maps events to stored rows and back, using one registry of event classes."""

    def __init__(self, registry: EventRegistry) -> None:
        self._registry = registry

    def to_row(self, event: Event, metadata: str) -> NewRow:
        """The stored form of `event`, with already-encoded `metadata`."""
        cls = type(event)
        if not isinstance(event, Event) or isinstance(event, UnknownEvent):
            raise ConfigurationError(
                f"only instances of registered Event classes can be appended, not {cls.__name__}"
            )
        if self._registry.find(cls.__event_type__) is not cls:
            raise ConfigurationError(
                f"{cls.__qualname__} is not the class registered as {cls.__event_type__!r}; "
                "events of unregistered classes could not be read back"
            )
        return NewRow(
            event_id=event.event_id,
            event_type=cls.__event_type__,
            schema_version=cls.__schema_version__,
            metadata=metadata,
            payload=event.model_dump_json(),
        )

    def to_recorded(self, row: StoredRow) -> RecordedEvent:
        """The recorded event for a stored row."""
        try:
            data = pydantic_core.from_json(row.payload)
            metadata = (
                {} if row.metadata == _EMPTY_METADATA else pydantic_core.from_json(row.metadata)
            )
        except ValueError:
            raise EventDecodingError(
                f"event at position {row.position} is not valid JSON; run verify()"
            ) from None
        return RecordedEvent(
            position=row.position,
            stream_id=row.stream_id,
            version=row.version,
            event_id=row.event_id,
            event_type=row.event_type,
            schema_version=row.schema_version,
            recorded_at=row.recorded_at,
            metadata=metadata,
            event=self._model(row, data),
        )

    def _model(self, row: StoredRow, data: dict[str, Any]) -> Event:
        cls = self._registry.find(row.event_type)
        if cls is None:
            return UnknownEvent(
                type_name=row.event_type,
                schema_version=row.schema_version,
                data=data,
                event_id=row.event_id,
            )
        if row.schema_version > cls.__schema_version__:
            raise EventDecodingError(
                f"event at position {row.position} is {row.event_type!r} schema version "
                f"{row.schema_version}, newer than {cls.__qualname__} "
                f"(version {cls.__schema_version__}); upgrade the application"
            )
        data["event_id"] = row.event_id
        try:
            return cls.model_validate(data)
        except ValidationError as error:
            raise EventDecodingError(
                f"event at position {row.position} does not fit {cls.__qualname__}: "
                f"{_describe(error)}; register an upcaster for schema version "
                f"{row.schema_version}"
            ) from None


def encode_metadata(metadata: Mapping[str, JsonValue] | None) -> str:
    """Event metadata as stored: a JSON object."""
    if not metadata:
        return _EMPTY_METADATA
    if not all(isinstance(key, str) for key in metadata):
        raise ConfigurationError("event metadata keys must be strings")
    try:
        return pydantic_core.to_json(dict(metadata)).decode()
    except pydantic_core.PydanticSerializationError:
        raise ConfigurationError("event metadata must be JSON-serialisable") from None


def _describe(error: ValidationError) -> str:
    """The locations and kinds of validation errors, without the offending values."""
    problems = [
        f"{'.'.join(str(part) for part in issue['loc']) or '<event>'}: {issue['type']}"
        for issue in error.errors(include_input=False, include_url=False)
    ]
    return "; ".join(problems[:5]) + (" ..." if len(problems) > 5 else "")
