"""The C module `shredstore.storage.native` does what its Python originals do: the same bytes,
rows and verdicts for every value an append stores, and a refusal wherever they refuse.

Without a C compiler the library runs the originals; these tests then skip, unless
``SHREDSTORE_REQUIRE_NATIVE=1`` (set by .ci/run), under which a missing module fails them.
"""

from __future__ import annotations

import hashlib
import os
import tracemalloc
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from uuid import UUID, SafeUUID, uuid4

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shredstore.errors import TamperedError
from shredstore.storage import authentication, chain, formats
from shredstore.storage.chain import StoredRow
from tests.native import require

native: Any = require(chain.native_rows, "shredstore.storage.native")
REFUSED = (TamperedError, *chain.UNFRAMEABLE)


def outcome(function: Callable[..., Any], *args: Any) -> tuple[str, Any]:
    """What a call gives: its value, or that it refused (the error's type may differ between
    the two: struct.error in Python is OverflowError in C, and both mean the same)."""
    try:
        return "value", function(*args)
    except REFUSED:
        return "refused", None


ints = st.one_of(st.integers(min_value=0, max_value=2**64 - 1), st.integers(),
                 st.sampled_from([True, -1, 2**64, 2**200]), st.floats(allow_nan=False),
                 st.none(), st.text(max_size=3))
texts = st.one_of(st.text(), st.text(alphabet=st.characters(codec="utf-8")),
                  st.just("\ud800"), st.binary(max_size=4), st.none(), st.integers())
optional_texts = st.one_of(st.none(), texts)
zones = st.one_of(st.just(UTC), st.just(None), st.builds(
    lambda minutes: timezone(timedelta(minutes=minutes)), st.integers(-1439, 1439)))
moments = st.one_of(st.datetimes(timezones=zones),
                    st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30),
                                 timezones=st.just(UTC)),
                    st.dates(), st.none(), st.text(max_size=3))


class _UUIDWithoutInt(UUID):
    """A UUID subclass: handed to the Python original."""


ids = st.one_of(st.uuids(), st.builds(uuid4), st.just(UUID(int=2**128 - 1)),
                st.builds(lambda value: _UUIDWithoutInt(int=value),
                          st.integers(0, 2**128 - 1)),
                st.text(max_size=3), st.none(), st.binary(max_size=16))
fields = st.tuples(texts, ints, ids, texts, ints, moments, texts, texts, optional_texts,
                   optional_texts)
valid_fields = st.tuples(st.text(), st.integers(0, 2**64 - 1), st.uuids(), st.text(),
                         st.integers(0, 2**64 - 1), st.datetimes(timezones=st.just(UTC)),
                         st.text(), st.text(), st.one_of(st.none(), st.text()),
                         st.one_of(st.none(), st.text()))


@settings(max_examples=400)
@given(fields)
def test_framing_any_values_matches_the_python_original(values: tuple[Any, ...]) -> None:
    """The same bytes, or a refusal, for values of every type and range."""
    assert outcome(native.frame, *values) == outcome(chain._python_frame, *values)


@given(valid_fields)
def test_framing_stored_values_matches_the_python_original(values: tuple[Any, ...]) -> None:
    """Every value an append stores is framed, and framed alike."""
    assert native.frame(*values) == chain._python_frame(*values)


def stored_row(values: tuple[Any, ...], position: Any, mac: Any) -> StoredRow:
    (stream_id, version, event_id, event_type, schema_version, recorded_at, metadata, payload,
     personal, subjects) = values
    return StoredRow(position, stream_id, version, event_id, event_type, schema_version,
                     recorded_at, metadata, payload, personal, b"", b"", subjects, mac)


KEYED = hashlib.blake2b(key=os.urandom(32), digest_size=32, person=b"shredstore.row.2")


def signed(row: StoredRow) -> StoredRow:
    keyed = KEYED.copy()
    keyed.update(row.position.to_bytes(8, "big") + chain._python_frame_row(row))
    return row._replace(mac=b"\x02" + keyed.digest())


positions = st.one_of(st.integers(0, 2**64 - 1), st.sampled_from([-1, 2**64, True, None]))
macs = st.one_of(st.none(), st.binary(min_size=33, max_size=33).map(lambda mac: b"\x02" + mac[1:]),
                 st.binary(max_size=40), st.text(min_size=33, max_size=33))


@settings(max_examples=300)
@given(fields, positions, macs)
def test_authenticating_matches_the_python_original(values: tuple[Any, ...], position: Any,
                                                    mac: Any) -> None:
    """The same verdict (True, False or None: not format 2) or a refusal, for any row."""
    row = stored_row(values, position, mac)
    assert (outcome(native.authentic, row, KEYED)
            == outcome(authentication._python_authentic, row, KEYED))


@given(valid_fields, st.integers(0, 2**64 - 1), st.data())
def test_a_signed_row_is_authentic_and_any_change_is_not(values: tuple[Any, ...],
                                                          position: int, data: Any) -> None:
    """A row signed at its position passes; moved, or with one field changed, it fails."""
    row = signed(stored_row(values, position, None))
    assert native.authentic(row, KEYED) is True
    assert native.authentic(row._replace(position=position ^ 1), KEYED) is False
    field = data.draw(st.sampled_from(["stream_id", "metadata", "payload", "event_type"]))
    changed = row._replace(**{field: getattr(row, field) + "x"})
    assert native.authentic(changed, KEYED) is False


hex_ids = st.one_of(st.uuids().map(lambda value: value.hex),
                    st.uuids().map(lambda value: value.hex.upper()),
                    st.uuids().map(str), st.text(alphabet="0123456789abcdefgABCDEF ",
                                                 min_size=30, max_size=34),
                    st.just("\u0660" * 32),  # Arabic-Indic zeros: digits, not hex
                    st.binary(max_size=16), st.none())
time_texts = st.one_of(
    st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31)).map(
        lambda moment: moment.isoformat(sep=" ", timespec="microseconds")),
    st.datetimes().map(lambda moment: moment.isoformat(timespec="microseconds")),
    st.datetimes().map(lambda moment: moment.isoformat(sep=" ")),
    st.from_regex(r"\A\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}\.\d{6}\Z"),
    st.text(max_size=30), st.just("2026-02-30 10:00:00.000000"),
    st.just("2026-01-01 24:00:00.000000"), st.just("2026-01-01 10:00:00.00000\u0660"),
    st.binary(max_size=4), st.none())


@settings(max_examples=400)
@given(st.integers(), hex_ids, time_texts, st.booleans())
def test_converting_an_sqlite_row_matches_the_python_original(
        position: int, event_id: Any, recorded_at: Any, verified: bool) -> None:
    """The same StoredRow (its UUID and time alike, to the time zone object), or the same
    TamperedError, for any stored id and time."""
    raw: tuple[Any, ...] = (position, "customer-1", 2, event_id, "Registered", 1, recorded_at,
                            "{}", '{"plan":"free"}', None, '["c1"]', b"\x02" + bytes(32))
    if verified:
        raw += (bytes(32), b"\x01" * 32)
    made = outcome(native.sqlite_row, raw)
    assert made == outcome(formats._python_sqlite_row, raw)
    if made[0] == "value":
        row = made[1]
        assert type(row) is StoredRow
        assert type(row.event_id) is UUID
        assert row.event_id.is_safe is SafeUUID.unknown
        assert row.recorded_at.tzinfo is UTC


def test_an_sqlite_row_of_another_shape_goes_to_the_python_original() -> None:
    """A row that is not a tuple of 12 or 14 values is converted (or refused) by Python."""
    shaped = [1, "s", 1, "0" * 32, "T", 1, "2026-01-01 10:00:00.000000", "{}", "{}", None,
              None, None]
    assert native.sqlite_row(shaped) == formats._python_sqlite_row(shaped)
    with pytest.raises(TamperedError):
        native.sqlite_row((1, "s", 1, "0" * 32, "T", 1, "not a time", "{}", "{}", None,
                           None, None))


def test_the_native_steps_leak_nothing() -> None:
    """Many calls, on every path (fast, handed to Python, refused), leave no memory held."""
    row = signed(stored_row(("s", 1, uuid4(), "T", 1, datetime.now(UTC), "{}", "{}", None,
                             None), 5, None))
    raw = (1, "s", 1, uuid4().hex, "T", 1, "2026-01-01 10:00:00.000000", "{}", "{}", None,
           None, None)
    odd = row._replace(event_id=_UUIDWithoutInt(int=5), version=-1)

    def run(times: int) -> None:
        for _ in range(times):
            native.frame_row(row)
            native.authentic(row, KEYED)
            native.sqlite_row(raw)
            native.postgres_row((*raw[:6], 1764681234567890, *raw[7:]))
            outcome(native.postgres_row, (*raw[:6], 2**62, *raw[7:]))
            outcome(native.sqlite_row, (*raw[:6], "x", *raw[7:]))
            outcome(native.frame_row, odd)
            outcome(native.authentic, odd, KEYED)

    run(1000)  # warm: caches and free lists filled
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        run(20_000)
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert grown < 64 * 1024


def test_the_store_reads_through_the_native_steps() -> None:
    """The storage layer uses the C steps where they were built."""
    assert chain.frame is native.frame
    assert formats._sqlite_row is native.sqlite_row
    assert formats._postgres_row is native.postgres_row
    assert authentication._authentic is native.authentic


@settings(max_examples=400)
@given(st.one_of(st.integers(-(2**63), 2**63 - 1), st.integers(), st.none(), st.just(True),
                 st.floats(allow_nan=False), st.integers(-62135596800000000, 253402300799999999)),
       st.one_of(st.none(), st.binary(max_size=33), st.builds(memoryview, st.binary(max_size=4))),
       st.booleans())
def test_converting_a_postgresql_row_matches_the_python_original(
        micros: Any, mac: Any, verified: bool) -> None:
    """The same StoredRow (its time alike, to the time zone object), or the same
    TamperedError, for any stored time and authenticator."""
    raw: tuple[Any, ...] = (4, "customer-1", 2, uuid4(), "Registered", 1, micros, "{}",
                            '{"plan":"free"}', None, '["c1"]', mac)
    if verified:
        raw += (memoryview(bytes(32)), b"\x01" * 32)
    made = outcome(native.postgres_row, raw)
    assert made == outcome(formats._python_postgres_row, raw)
    if made[0] == "value":
        assert type(made[1]) is StoredRow
        assert made[1].recorded_at.tzinfo is UTC
        assert made[1].mac is None or type(made[1].mac) is bytes
