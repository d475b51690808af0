"""The validate step: data to its model, with errors that name fields and never values; and
the append's check that a reader will return the event as written."""

from __future__ import annotations

from typing import Annotated, Any

import pytest
from pydantic import BaseModel

from shredstore import Event, EventDecodingError, InvalidEventError, PersonalData, SubjectId
from shredstore.mapping.encoding import encode_values, to_json
from shredstore.mapping.split import split
from shredstore.mapping.validation import check_reads_back, validate
from shredstore.personal import plan_of


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
