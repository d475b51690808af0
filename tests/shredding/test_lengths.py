"""What the length of a stored sealed value says about an erased subject's value: nothing,
for short values (issue 14, point 5).

An attacker with the database files measured the sealed values of erased subjects and read
8 of 8 `gender` values back from their lengths alone. Sealed values are now padded, so these
tests append eight different short values, erase their subjects and look at the raw rows.
Assertions name values by position or length, never print them.
"""

from __future__ import annotations

import base64
import functools
import json
from collections.abc import Iterator
from typing import Annotated, Any

import pytest
import sqlalchemy as sa

from keyvault import MasterKey
from keyvault.envelope import FORMAT_PADDED, DataKey
from shredstore import REDACTED, Event, EventStore, PersonalData, SubjectId


class GenderRecorded(Event, type_name="test.lengths.GenderRecorded"):
    customer_id: SubjectId
    gender: Annotated[str, PersonalData()]


GENDERS = ["m", "woman", "male", "female", "non-binary", "prefer not to say", "genderqueer",
           "agender"]
SUBJECTS = [f"c-{index}" for index in range(1, len(GENDERS) + 1)]
"""Subject ids of one length, so that only the sealed values could differ."""


@pytest.fixture
def store(any_url: str) -> Iterator[EventStore]:
    with EventStore(any_url, master_key=MasterKey.generate()) as store:
        yield store


def record_and_erase(store: EventStore) -> None:
    """Each subject records its gender in a stream of its own; then every subject is erased."""
    for subject, gender in zip(SUBJECTS, GENDERS, strict=True):
        store.append(f"customer-{subject}", [GenderRecorded(customer_id=subject, gender=gender)])
    read_back = [record.event.gender for record in store.read_all(types=[GenderRecorded])]
    round_trips = read_back == GENDERS
    assert round_trips, "the values did not read back as appended"
    for subject in SUBJECTS:
        store.erase_subject(subject, reason="test of lengths")
    erased = list(store.read_all(types=[GenderRecorded]))
    assert len(erased) == len(GENDERS)
    assert all(record.event.gender is REDACTED for record in erased)


def stored_personal(url: str) -> list[str]:
    """The raw `personal` column of every GenderRecorded event, in order, as stored."""
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(sa.text(
                "SELECT personal FROM shredstore_events WHERE event_type = :t ORDER BY position"),
                {"t": "test.lengths.GenderRecorded"}).all()
    finally:
        engine.dispose()
    return [str(row[0]) for row in rows]


def sealed_values(personal: list[str]) -> list[bytes]:
    """The one sealed value of each event's one personal group."""
    groups: list[list[dict[str, Any]]] = [json.loads(column) for column in personal]
    assert all(len(event) == 1 for event in groups)
    return [base64.b64decode(event[0]["sealed"]) for event in groups]


def test_erased_short_values_cannot_be_told_apart_by_length(
    store: EventStore, any_url: str
) -> None:
    """Eight erased subjects' eight different genders are stored as sealed values of one length,
    and so are the whole personal columns of their events."""
    record_and_erase(store)
    personal = stored_personal(any_url)
    sealed = sealed_values(personal)
    assert len(sealed) == len(GENDERS)
    assert {value[0] for value in sealed} == {FORMAT_PADDED}
    assert len({len(value) for value in sealed}) == 1, [len(value) for value in sealed]
    assert len({len(column) for column in personal}) == 1, [len(c) for c in personal]


def test_unpadded_sealing_would_reveal_every_value(
    store: EventStore, any_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The control: with the old unpadded format, the lengths of the same eight sealed values
    are eight different numbers, one per value, which is the leak the padding closes."""
    monkeypatch.setattr(DataKey, "seal", functools.partialmethod(DataKey.seal, padded=False))
    record_and_erase(store)
    sealed = sealed_values(stored_personal(any_url))
    assert len({len(value) for value in sealed}) == len(GENDERS)
