"""Events to stored rows and back, through every step, without a database: what `to_rows`
stores is the documented format, and `to_recorded` returns the event as appended."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated

import pydantic_core
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, Field

import keyvault
from keyvault import KeyRing, KeyVault
from shredstore import (
    REDACTED,
    ConfigurationError,
    Event,
    EventDecodingError,
    EventRegistry,
    InvalidEventError,
    PersonalData,
    SubjectId,
    TamperedError,
    UnknownEvent,
)
from shredstore.mapping.column import decode_column
from shredstore.mapping.mapper import EventMapper, open_one, page_subjects
from shredstore.storage.chain import StoredRow
from shredstore.storage.log import NewRow


class Line(BaseModel):
    recipient_id: SubjectId
    recipient: Annotated[str, PersonalData()]


class Ordered(Event, type_name="test.mapping.mapper.Ordered", register=False):
    customer_id: SubjectId
    name: Annotated[str, PersonalData()]
    lines: list[Line] = Field(default_factory=list)
    total: int = 0


class Plain(Event, type_name="test.mapping.mapper.Plain", register=False):
    text: str


@pytest.fixture(scope="module")
def mapper() -> EventMapper:
    registry = EventRegistry()
    registry.register(Ordered)
    registry.register(Plain)
    return EventMapper(registry)


def stored(rows: list[NewRow]) -> list[StoredRow]:
    now = datetime(2024, 1, 1, tzinfo=UTC)
    return [StoredRow(n, "s", n, row.event_id, row.event_type, row.schema_version, now,
                      row.metadata, row.payload, row.personal, b"", b"")
            for n, row in enumerate(rows, start=1)]


def test_the_stored_row_holds_plain_fields_and_one_group_per_subject(
        mapper: EventMapper, ring: KeyRing) -> None:
    event = Ordered(customer_id="m-1", name="Ann", total=3,
                    lines=[Line(recipient_id="m-2", recipient="Bob")])
    (row,) = mapper.to_rows([event], "{}", ring)
    assert pydantic_core.from_json(row.payload) == {
        "customer_id": "m-1", "lines": [{"recipient_id": "m-2"}], "total": 3}
    assert row.personal is not None
    groups = decode_column(row.personal)
    assert [(g["subject"], g["paths"]) for g in groups] == [
        ("m-1", [["name"]]), ("m-2", [["lines", 0, "recipient"]])]
    assert row.personal == pydantic_core.to_json(groups).decode()  # the documented JSON
    assert row.subjects == row.sealed_for == {"m-1", "m-2"}


text = st.text(max_size=30)


@settings(max_examples=40, deadline=None)
@given(names=st.lists(st.tuples(st.sampled_from(["r-1", "r-2", "r-3"]), text), max_size=4),
       name=text, total=st.integers())
def test_what_to_rows_stores_to_recorded_returns(
        mapper: EventMapper, vault: KeyVault, names: list[tuple[str, str]], name: str,
        total: int) -> None:
    events = [Ordered(customer_id="r-1", name=name, total=total,
                      lines=[Line(recipient_id=s, recipient=n) for s, n in names]),
              Plain(text=name)]
    with vault.keyring() as ring:
        rows = stored(mapper.to_rows(events, '{"by":"test"}', ring))
        parsed, subjects = page_subjects(rows)
        assert subjects == {"r-1"} | {s for s, _ in names}
        recorded = [mapper.to_recorded(row, ring, groups)
                    for row, groups in zip(rows, parsed, strict=True)]
    assert [r.event for r in recorded] == events
    assert recorded[0].metadata == {"by": "test"}
    assert recorded[0].personal_fields == {"name"} | {
        f"lines.{i}.recipient" for i in range(len(names))}
    assert recorded[1].personal_fields == frozenset()
    assert all(r.redacted_fields == frozenset() for r in recorded)


def test_an_erased_subjects_fields_read_as_redacted(
        mapper: EventMapper, vault: KeyVault) -> None:
    event = Ordered(customer_id="x-1", name="Ann",
                    lines=[Line(recipient_id="x-2", recipient="Bob")])
    with vault.keyring() as ring:
        (row,) = stored(mapper.to_rows([event], "{}", ring))
    vault.erase("x-2")
    with vault.keyring() as ring:
        recorded = mapper.to_recorded(row, ring)
    assert recorded.redacted_fields == {"lines.0.recipient"}
    assert recorded.event.lines[0].recipient is REDACTED  # type: ignore[attr-defined]
    assert recorded.event.name == "Ann"  # type: ignore[attr-defined]


def test_a_row_of_an_unregistered_type_reads_as_unknown_event_opened_or_redacted(
        mapper: EventMapper, vault: KeyVault) -> None:
    """Self-describing records: no class is needed to open or redact them."""
    event = Ordered(customer_id="u-1", name="Ann")
    with vault.keyring() as ring:
        (row,) = stored(mapper.to_rows([event], "{}", ring))
        other = EventMapper(EventRegistry())
        unknown = other.to_recorded(row, ring).event
    assert isinstance(unknown, UnknownEvent)
    assert unknown.data["name"] == "Ann"
    vault.erase("u-1")
    with vault.keyring() as ring:
        recorded = other.to_recorded(row, ring)
    assert recorded.redacted_fields == {"name"}


def test_a_malformed_personal_column_names_the_rows_position(
        mapper: EventMapper, ring: KeyRing) -> None:
    """page_subjects leaves it to to_recorded, which reports it with its position."""
    (row,) = stored(mapper.to_rows([Ordered(customer_id="t-1", name="Ann")], "{}", ring))
    row = row._replace(personal='[{"subject": "t-1"}]')
    parsed, subjects = page_subjects([row])
    assert (parsed, subjects) == ([None], set())
    with pytest.raises(TamperedError, match="event at position 1"):
        mapper.to_recorded(row, ring)


def test_open_one_opens_a_group_of_a_stored_event(mapper: EventMapper, ring: KeyRing) -> None:
    event = Ordered(customer_id="p-1", name="Ann")
    (row,) = mapper.to_rows([event], "{}", ring)
    assert row.personal is not None
    (group,) = decode_column(row.personal)
    assert open_one(ring, event.event_id, group) is True
    with pytest.raises(keyvault.TamperedError):  # bound to its event
        open_one(ring, uuid.uuid4(), group)
    with pytest.raises(TamperedError, match="malformed"):
        open_one(ring, event.event_id, {"subject": "p-1"})


def test_an_event_holding_redacted_is_not_stored_again(
        mapper: EventMapper, ring: KeyRing) -> None:
    with pytest.raises(InvalidEventError, match="an erased value cannot be stored again"):
        mapper.to_rows([Ordered(customer_id="q-1", name=REDACTED)], "{}", ring)


def test_personal_data_needs_a_ring(mapper: EventMapper) -> None:
    assert mapper.needs_keys(Ordered(customer_id="n-1", name="Ann"))
    assert not mapper.needs_keys(Plain(text="a"))
    with pytest.raises(ConfigurationError, match="master_key"):
        mapper.to_rows([Ordered(customer_id="n-1", name="Ann")], "{}", None)
    (row,) = mapper.to_rows([Plain(text="a")], "{}", None)
    assert row.personal is None


@pytest.mark.parametrize("payload", ["[1]", '"text"', "5", "null"])
def test_a_payload_that_is_not_a_json_object_is_a_decoding_error(
        mapper: EventMapper, ring: KeyRing, payload: str) -> None:
    """Only an edit of the table stores another JSON value: the read names the event (it
    raised TypeError from inside the mapper)."""
    (row,) = stored(mapper.to_rows([Plain(text="hello")], "{}", ring))
    with pytest.raises(EventDecodingError, match="position 1 does not hold a JSON object"):
        mapper.to_recorded(row._replace(payload=payload), ring)
