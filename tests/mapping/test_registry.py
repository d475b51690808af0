"""The registry step: only the class registered for a type name is stored under it, and a
stored type name finds its class, or none (an `UnknownEvent`)."""

from __future__ import annotations

import pytest
from pydantic import BaseModel

from shredstore import ConfigurationError, Event, EventDecodingError, EventRegistry, UnknownEvent
from shredstore.mapping.registry import class_for, registered_class


class Opened(Event, type_name="test.mapping.Opened", register=False):
    name: str


class Opened2(Event, type_name="test.mapping.Opened", register=False):
    name: str


class Closed(Event, type_name="test.mapping.Closed", schema_version=2, register=False):
    reason: str


@pytest.fixture
def registry() -> EventRegistry:
    registry = EventRegistry()
    registry.register(Opened)
    registry.register(Closed)
    return registry


def test_a_registered_event_is_stored_under_its_class(registry: EventRegistry) -> None:
    cls = registered_class(registry, Opened(name="a"))
    assert cls is Opened
    assert class_for(registry, cls.__event_type__, cls.__schema_version__, "here") is Opened


def test_another_class_of_the_same_type_name_is_refused(registry: EventRegistry) -> None:
    """Its records would be read as the registered class."""
    with pytest.raises(ConfigurationError, match="not the class registered"):
        registered_class(registry, Opened2(name="a"))


def test_unknown_events_and_other_models_are_refused(registry: EventRegistry) -> None:
    with pytest.raises(ConfigurationError, match="only instances of registered Event classes"):
        registered_class(registry, UnknownEvent(type_name="x", schema_version=1, data={}))
    with pytest.raises(ConfigurationError, match="not Plain"):
        registered_class(registry, Plain())  # type: ignore[arg-type]


class Plain(BaseModel):
    pass


def test_a_type_name_without_a_class_reads_as_none(registry: EventRegistry) -> None:
    assert class_for(registry, "test.mapping.Gone", 1, "event at position 1") is None


def test_a_record_of_a_newer_schema_version_is_refused(registry: EventRegistry) -> None:
    """Written by a newer application: upgrade, rather than read it wrongly."""
    assert class_for(registry, "test.mapping.Closed", 1, "event at position 1") is Closed
    with pytest.raises(EventDecodingError, match=r"event at position 4 .* schema version 3"):
        class_for(registry, "test.mapping.Closed", 3, "event at position 4")
