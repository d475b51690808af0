"""Declaring events: type names, schema versions, the registry, and identity."""

from __future__ import annotations

import time
import uuid

import pytest

from shredstore import (
    ConfigurationError,
    Event,
    EventRegistry,
    EventStore,
    UnknownEventType,
    default_registry,
)
from shredstore.events import new_event_id


def test_the_type_name_defaults_to_the_class_name() -> None:
    """An event class without type_name is stored under its class name, schema version 1."""

    class PlainNamedThing(Event):
        x: int

    assert PlainNamedThing.__event_type__ == "PlainNamedThing"
    assert PlainNamedThing.__schema_version__ == 1
    assert default_registry.get("PlainNamedThing") is PlainNamedThing


def test_type_name_and_schema_version_are_class_keywords() -> None:
    """type_name= and schema_version= set the stored name and version."""

    class Renamed(Event, type_name="test.events.renamed", schema_version=3):
        x: int

    assert (Renamed.__event_type__, Renamed.__schema_version__) == ("test.events.renamed", 3)
    assert default_registry.get("test.events.renamed") is Renamed
    assert "Renamed" not in default_registry


def test_a_subclass_gets_its_own_name_and_inherits_nothing_by_accident() -> None:
    """A subclass of a named event class has its own default type name."""

    class Parent(Event, type_name="test.events.parent", schema_version=2):
        x: int

    class ChildOfParent(Parent):
        y: int

    assert ChildOfParent.__event_type__ == "ChildOfParent"
    assert ChildOfParent.__schema_version__ == 2


def test_two_classes_cannot_claim_one_type_name() -> None:
    """A second, different class with a taken type name is refused when it is defined."""

    class First(Event, type_name="test.events.taken"):
        x: int

    with pytest.raises(ConfigurationError, match=r"already used by .*First"):

        class Second(Event, type_name="test.events.taken"):
            x: int

    assert default_registry.get("test.events.taken") is First


def test_redefining_the_same_class_replaces_it() -> None:
    """Defining a class again under the same qualified name (a reload) replaces it."""
    for _ in range(2):

        class Reloaded(Event, type_name="test.events.reloaded"):
            x: int

    assert default_registry.get("test.events.reloaded") is Reloaded


@pytest.mark.parametrize("bad", [{"type_name": " "}, {"schema_version": 0},
                                 {"schema_version": True}])
def test_bad_class_keywords_are_refused(bad: dict[str, object]) -> None:
    """Blank type names and schema versions below 1 are refused at class definition."""
    with pytest.raises(ConfigurationError):

        class Bad(Event, register=False, **bad):  # type: ignore[call-arg]
            x: int


def test_an_unknown_name_is_a_lookup_error() -> None:
    """Looking up a name nobody registered raises UnknownEventType, a LookupError."""
    registry = EventRegistry()
    with pytest.raises(LookupError, match="no event class"):
        registry.get("nope")
    assert issubclass(UnknownEventType, LookupError)
    assert registry.find("nope") is None


def test_events_are_frozen_and_carry_an_id_outside_their_data() -> None:
    """Events are immutable; event_id is unique per instance and not part of the payload."""

    class Frozen(Event, type_name="test.events.frozen"):
        x: int

    a, b = Frozen(x=1), Frozen(x=1)
    assert a.event_id != b.event_id
    assert a.model_dump() == {"x": 1}
    with pytest.raises(ValueError, match="frozen"):
        a.x = 2  # type: ignore[misc]


def test_event_ids_are_version_7_uuids_ordered_by_time() -> None:
    """Event ids are RFC 9562 version 7 UUIDs: unique, and ordered by the millisecond they
    were made in (so the log's unique index on them grows at its end)."""
    class Noted(Event, type_name="test.events.Noted", register=False):
        note: str

    earlier = [Noted(note="a").event_id for _ in range(1000)]
    time.sleep(0.002)
    later = new_event_id()
    assert all(event_id.version == 7 and event_id.variant == uuid.RFC_4122
               for event_id in [*earlier, later])
    assert len(set(earlier)) == len(earlier)
    assert max(earlier) < later
    made_at = later.int >> 80  # milliseconds since the epoch
    assert abs(made_at - time.time() * 1000) < 60_000


class Deposited(Event, type_name="test.events.Deposited"):
    """Two deposits of the same amount are two facts."""

    cents: int


def test_unequal_events_never_print_alike() -> None:
    """Events with the same fields and different ids are unequal, and their reprs differ (a
    failed ``assert read == expected`` shows why), the id after the data."""
    a, b = Deposited(cents=10), Deposited(cents=10)
    assert a != b
    assert repr(a) != repr(b)
    assert repr(a) == f"Deposited(cents=10, event_id={a.event_id!r})"
    assert str(a) == f"cents=10 event_id={a.event_id!r}"


def test_equality_is_class_fields_and_id_and_the_hash_agrees() -> None:
    """Equal means same class, same fields, same id; equal events hash alike, and a set keeps
    two facts with the same data."""

    class Withdrawn(Event, type_name="test.events.Withdrawn"):
        cents: int

    a = Deposited(cents=10)
    same = Deposited(cents=10, event_id=a.event_id)
    assert a == same
    assert hash(a) == hash(same)
    assert repr(a) == repr(same)
    assert a == a.model_copy()
    assert a != Deposited(cents=11, event_id=a.event_id)
    assert a != Withdrawn(cents=10, event_id=a.event_id)
    assert len({a, same, Deposited(cents=10)}) == 2


def test_an_event_read_back_equals_the_one_appended_but_not_a_fresh_copy() -> None:
    """The stored id comes back: a read event equals (and prints as) the appended instance;
    one built afresh has another id, unequal and printed differently, until given the id."""
    appended = Deposited(cents=10)
    with EventStore("sqlite://") as store:
        store.append("account", [appended])
        read = next(store.read_stream("account")).event
    assert read == appended
    assert repr(read) == repr(appended)
    fresh = Deposited(cents=10)
    assert read != fresh
    assert repr(read) != repr(fresh)
    assert read == Deposited(cents=10, event_id=appended.event_id)
    assert read.model_dump() == fresh.model_dump() == {"cents": 10}
