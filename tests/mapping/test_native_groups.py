"""The C module `shredstore.mapping.native` opens personal groups as `open_groups`'s own loop
does, and records a row as `EventMapper.to_recorded` does: the same fields, redactions,
values, events and errors for any column and row, and nothing changed where it leaves one to
the Python code.

Skipped where the module was not built, unless ``SHREDSTORE_REQUIRE_NATIVE=1`` (.ci/run).
"""

from __future__ import annotations

import copy
import json
from base64 import b64encode
from datetime import UTC, datetime
from typing import Annotated, Any
from uuid import uuid4

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import keyvault
from keyvault import KeyRing, KeyVault
from shredstore import REDACTED, Event, EventRegistry, PersonalData, SubjectId
from shredstore.errors import ShredstoreError
from shredstore.mapping import mapper as mapper_module
from shredstore.mapping import sealing
from shredstore.mapping.column import decode_column
from shredstore.mapping.mapper import EventMapper
from shredstore.storage.chain import StoredRow
from tests.native import require

native: Any = require(sealing.native_groups, "shredstore.mapping.native")

CONTEXT = b"shredstore.event.v1\x00" + bytes(range(16))


class FakeRing:
    """Opens a 'sealed' value that is the JSON of [subject, aad as hex, plaintext]: the
    plaintext if subject and aad match, None for an erased subject, keyvault's TamperedError
    otherwise (the real ring's cryptography is tested with the vault)."""

    def __init__(self, erased: frozenset[str]) -> None:
        self.erased = erased

    def open_unless_erased(self, subject: str, sealed: bytes, *, aad: bytes) -> bytes | None:
        if subject in self.erased:
            return None
        try:
            named, context, plaintext = json.loads(sealed)
        except (ValueError, TypeError):
            raise keyvault.TamperedError("does not open") from None
        if (named, context) != (subject, aad.hex()):
            raise keyvault.TamperedError("does not open")
        return str(plaintext).encode()


def sealed_for(subject: str, paths: list[Any], plaintext: str) -> str:
    aad = CONTEXT + sealing.to_json(paths)
    return b64encode(json.dumps([subject, aad.hex(), plaintext]).encode()).decode()


names = st.sampled_from(["name", "email", "phone", "address", "é"])
subjects = st.sampled_from(["c1", "c2", "c3"])


@st.composite
def groups(draw: Any) -> Any:
    """A column's group: mostly as appends write it, sometimes altered in one way."""
    subject = draw(subjects)
    paths = [[name] for name in draw(st.lists(names, min_size=1, max_size=3, unique=True))]
    values = draw(st.lists(st.one_of(st.text(max_size=5), st.integers(), st.none()),
                           min_size=len(paths), max_size=len(paths)))
    plaintext = json.dumps(values)
    group: dict[str, Any] = {"subject": subject, "paths": paths,
                             "sealed": sealed_for(subject, paths, plaintext)}
    change = draw(st.sampled_from(
        ["none"] * 6 + ["redacted", "nested", "bad base64", "other subject", "fewer values",
                        "not a list", "int path", "no paths", "not a dict", "sealed not text",
                        "redacted false", "empty paths"]))
    if change == "redacted":
        group = {"subject": subject, "paths": paths, "redacted": True}
    elif change == "nested":
        group["paths"] = [["address", "street"]]
        group["sealed"] = sealed_for(subject, group["paths"], json.dumps(["x"]))
    elif change == "bad base64":
        group["sealed"] = group["sealed"][:-2] + "!!"
    elif change == "other subject":
        group["sealed"] = sealed_for("someone else", paths, plaintext)
    elif change == "fewer values":
        group["sealed"] = sealed_for(subject, paths, json.dumps(values[:-1]))
    elif change == "not a list":
        group["sealed"] = sealed_for(subject, paths, json.dumps({"a": 1}))
    elif change == "int path":
        group["paths"] = [[0]]
    elif change == "no paths":
        del group["paths"]
    elif change == "not a dict":
        return [subject]
    elif change == "sealed not text":
        group["sealed"] = 5
    elif change == "redacted false":
        group["redacted"] = False
    elif change == "empty paths":
        group["paths"] = []
        group["sealed"] = sealed_for(subject, [], "[]")
    return group


def opened(groups: list[Any], data: dict[str, Any], ring: FakeRing, *, in_c: bool,
           allow_redacted: bool) -> tuple[Any, ...]:
    saved = sealing.native_groups
    sealing.native_groups = saved if in_c else None
    try:
        result = sealing.open_groups(ring, groups, data, CONTEXT, where="event at position 1",
                                     allow_redacted=allow_redacted)  # type: ignore[arg-type]
    except (ShredstoreError, keyvault.KeyVaultError) as error:
        return "error", type(error), str(error)
    finally:
        sealing.native_groups = saved
    return "opened", result, data


@settings(max_examples=500)
@given(st.lists(groups(), max_size=3), st.sets(subjects), st.booleans())
def test_opening_matches_the_python_loop(column: list[Any], erased: set[str],
                                         allow_redacted: bool) -> None:
    """Fields, redactions, values put into the data, and errors are the same."""
    data = {"plan": "free", "name": "placeholder"}
    ring = FakeRing(frozenset(erased))
    assert (opened(copy.deepcopy(column), dict(data), ring, in_c=True,
                   allow_redacted=allow_redacted)
            == opened(copy.deepcopy(column), dict(data), ring, in_c=False,
                      allow_redacted=allow_redacted))


def test_the_usual_column_is_opened_in_c_and_another_is_left_untouched() -> None:
    """The C function opens what appends write, and returns None, changing nothing, for a
    column it leaves to the loop."""
    ring = FakeRing(frozenset({"c2"}))
    usual = [{"subject": "c1", "paths": [["name"], ["email"]],
              "sealed": sealed_for("c1", [["name"], ["email"]], '["Ada", "ada@example.com"]')},
             {"subject": "c2", "paths": [["phone"]],
              "sealed": sealed_for("c2", [["phone"]], '["1"]')}]
    data: dict[str, Any] = {"plan": "free"}
    fields, redacted = native.open_groups(
        ring.open_unless_erased, usual, data, CONTEXT)
    assert (fields, redacted) == (frozenset({"name", "email", "phone"}), True)
    assert data == {"plan": "free", "name": "Ada", "email": "ada@example.com",
                    "phone": REDACTED}
    nested = [{"subject": "c1", "paths": [["address", "street"]], "sealed": "AA=="}]
    data = {"plan": "free"}
    assert native.open_groups(
        ring.open_unless_erased, nested, data, CONTEXT) is None
    assert data == {"plan": "free"}


class Contact(Event, type_name="test.mapping.native.Contact", register=False):
    customer_id: SubjectId
    name: Annotated[str, PersonalData()]
    email: Annotated[str | None, PersonalData()] = None
    plan: str = "free"
    seats: int = 1


class Note(Event, type_name="test.mapping.native.Note", register=False):
    text: str


@pytest.fixture(scope="module")
def mapper() -> EventMapper:
    registry = EventRegistry()
    registry.register(Contact)
    registry.register(Note)
    return EventMapper(registry)


ALTERATIONS = ["none", "none", "payload not json", "payload a list", "payload wrong type",
               "metadata not json", "metadata a list", "metadata", "other event id",
               "personal unusual", "no groups given", "schema version", "unknown type",
               "erased"]


def recorded_twice(mapper: EventMapper, ring: KeyRing, row: StoredRow,
                   groups: list[Any] | None) -> tuple[Any, Any]:
    """`to_recorded` with the C path and without it: its event, or its error."""
    outcomes = []
    saved = sealing.native_groups
    for in_c in (True, False):
        mapper_module.native_groups = saved if in_c else None
        try:
            outcomes.append(("event", mapper.to_recorded(row, ring, copy.deepcopy(groups))))
        except (ShredstoreError, keyvault.KeyVaultError) as error:
            outcomes.append(("error", type(error), str(error)))
        finally:
            mapper_module.native_groups = saved
    return outcomes[0], outcomes[1]


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(ALTERATIONS), st.booleans(), st.text(max_size=8))
def test_recording_a_row_matches_the_python_code(mapper: EventMapper, vault: KeyVault,
                                                 alteration: str, personal: bool,
                                                 value: str) -> None:
    """The same RecordedEvent (fields, redactions, metadata) or the same error, for rows as
    appended and rows altered in each way a reader must judge."""
    subject = f"native-{uuid4().hex}"
    event: Event = (Contact(customer_id=subject, name=value or "x", email=value or None)
                    if personal else Note(text=value))
    with vault.keyring() as ring:
        (new,) = mapper.to_rows([event], '{"by":"test"}' if alteration == "metadata" else "{}",
                                ring)
    row = StoredRow(7, "s", 1, new.event_id, new.event_type, new.schema_version,
                    datetime(2026, 12, 2, tzinfo=UTC), new.metadata, new.payload, new.personal,
                    b"", b"", None, None)
    row = altered(row, alteration)
    if alteration == "erased" and personal:
        vault.erase(subject)
    groups = None if row.personal is None or alteration == "no groups given" else (
        decode_column(row.personal))
    for _ in range(2):  # the second time each class is read through its kept validator
        with vault.keyring() as ring:
            ring.preload({subject})
            with_c, without = recorded_twice(mapper, ring, row, groups)
        assert with_c == without


def altered(row: StoredRow, alteration: str) -> StoredRow:
    """The row with one change an edit of the table could make (or none)."""
    changes: dict[str, dict[str, Any]] = {
        "payload not json": {"payload": row.payload[:-1]},
        "payload a list": {"payload": "[1]"},
        "payload wrong type": {"payload": row.payload.replace('"free"', "5").replace(
            '"text":', '"t":')},
        "metadata not json": {"metadata": "{"},
        "metadata a list": {"metadata": "[]"},
        "other event id": {"event_id": uuid4()},
        "schema version": {"schema_version": row.schema_version + 1},
        "unknown type": {"event_type": "test.mapping.native.Gone"},
    }
    if alteration == "personal unusual" and row.personal is not None:
        groups = decode_column(row.personal)
        groups[0]["paths"] = [["name", 0]]
        return row._replace(personal=json.dumps(groups))
    return row._replace(**changes.get(alteration, {}))


json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=4)),
    lambda inner: st.one_of(st.lists(inner, max_size=3),
                            st.dictionaries(st.text(max_size=4), inner, max_size=3)),
    max_leaves=8)
well_formed_paths = st.lists(st.lists(names, min_size=1, max_size=2), max_size=3)
usual_groups = st.fixed_dictionaries(
    {"subject": st.one_of(subjects, subjects, subjects, st.just(""), st.integers()),
     "paths": st.one_of(well_formed_paths, well_formed_paths, well_formed_paths,
                        st.lists(st.lists(names, max_size=2), max_size=3), json_values)},
    optional={"sealed": st.one_of(st.text(max_size=8), st.text(max_size=8), st.integers()),
              "redacted": st.one_of(st.just(True), json_values)})
formed_groups = st.one_of(
    st.fixed_dictionaries({"subject": subjects, "paths": well_formed_paths,
                           "sealed": st.text(max_size=8)}),
    st.fixed_dictionaries({"subject": subjects, "paths": well_formed_paths,
                           "redacted": st.just(True)}))
columns = st.one_of(
    st.none(),
    st.lists(formed_groups, min_size=1, max_size=3).map(json.dumps),
    st.lists(formed_groups, min_size=1, max_size=3).map(json.dumps),
    st.lists(usual_groups, min_size=1, max_size=3).map(json.dumps),
    st.lists(st.one_of(usual_groups, json_values), max_size=3).map(json.dumps),
    json_values.map(json.dumps),
    st.text(max_size=12))


@settings(max_examples=500)
@given(st.lists(columns, max_size=5))
def test_a_pages_columns_are_parsed_as_the_python_code_parses_them(
        texts: list[str | None]) -> None:
    """The same groups (None for a malformed column) and the same subjects, for columns of
    any JSON and any text."""
    page = [StoredRow(n, "s", n, uuid4(), "T", 1, datetime(2026, 12, 2, tzinfo=UTC), "{}", "{}",
                      text, b"", b"", None, None) for n, text in enumerate(texts, start=1)]
    assert (native.page_subjects(page)
            == mapper_module._python_page_subjects(page))
