"""The validate step: data to its model, with errors that name fields and never values; and
the append's check that a reader will return the event as written."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated, Any

import pytest
from pydantic import BaseModel

from shredstore import Event, EventDecodingError, InvalidEventError, PersonalData, SubjectId
from shredstore.events import EventRegistry
from shredstore.mapping.encoding import encode_values, to_json
from shredstore.mapping.mapper import EventMapper
from shredstore.mapping.split import split
from shredstore.mapping.validation import check_reads_back, validate
from shredstore.personal import plan_of
from shredstore.storage.chain import StoredRow


class Account(BaseModel):
    owner: str
    balance: int


class Noted(Event, type_name="test.mapping.validation.Noted", register=False):
    customer_id: SubjectId
    name: Annotated[str, PersonalData()]
    ratio: float = 0.0
    loose: Any = None


def test_data_that_does_not_fit_names_the_fields_not_the_values() -> None:
    with pytest.raises(EventDecodingError, match="event at position 3 does not fit Account") \
            as raised:
        validate(Account, {"owner": "secret-owner", "balance": "secret-balance"},
                 "event at position 3")
    assert "balance: int_parsing" in str(raised.value)
    assert "secret" not in str(raised.value)


def stored(event: Noted) -> tuple[str, dict[str, Any], dict[str, bytes]]:
    data, groups, _ = split(event, plan_of(Noted))
    payload = to_json(data).decode()
    return payload, groups, {s: encode_values(v.values(), Noted) for s, v in groups.items()}


def test_an_event_that_reads_back_passes() -> None:
    event = Noted(customer_id="c-1", name="Ann", ratio=0.5, loose={"a": [1, 2]})
    check_reads_back(Noted, event, *stored(event))


@pytest.mark.parametrize(("field", "value", "problem"), [
    ("ratio", float("nan"), "ratio: float_type"),
    ("loose", (1, 2), "field loose would differ"),
])
def test_an_event_that_would_not_read_back_is_refused(field: str, value: Any,
                                                       problem: str) -> None:
    """NaN is stored as null, which a float field refuses; a tuple under Any comes back as a
    list: the reader would not return the event."""
    event = Noted(customer_id="c-1", name="Ann", **{field: value})
    with pytest.raises(InvalidEventError, match=f"would not read back as written.*{problem}"):
        check_reads_back(Noted, event, *stored(event))


def test_a_payload_nested_beyond_what_readers_parse_is_refused() -> None:
    event = Noted(customer_id="c-1", name="Ann")
    _, groups, plaintexts = stored(event)
    payload = '{"customer_id":"c-1","loose":' + "[" * 300 + "]" * 300 + "}"
    with pytest.raises(InvalidEventError, match="about 200 levels"):
        check_reads_back(Noted, event, payload, groups, plaintexts)


class Counted(Event, type_name="test.mapping.validation.Counted", register=False):
    count: int


def test_a_row_that_no_longer_fits_its_class_names_the_field_not_the_value_every_time() -> None:
    """The first read of a class and every later one (which skips the class lookups) raise
    the same EventDecodingError, naming the position and field, never the stored value."""
    registry = EventRegistry()
    registry.register(Counted)
    mapper = EventMapper(registry)

    def row(position: int, payload: str) -> StoredRow:
        return StoredRow(position, "s", position, uuid.uuid4(), "test.mapping.validation.Counted",
                         1, datetime.now(UTC), "{}", payload, None, b"", b"")

    assert mapper.to_recorded(row(1, '{"count": 1}'), None).event.count == 1  # type: ignore[attr-defined]
    for position in (2, 3):  # after the class was read once, and again
        with pytest.raises(EventDecodingError,
                           match=f"event at position {position} does not fit Counted") as raised:
            mapper.to_recorded(row(position, '{"count": "secret-count"}'), None)
        assert "count: int_parsing" in str(raised.value)
        assert "secret" not in str(raised.value)
