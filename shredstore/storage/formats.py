"""Values as the hot path's driver SQL stores and reads them, on each backend.

The tables are declared with SQLAlchemy's types; the hot path bypasses SQLAlchemy's
processing, so it writes and reads those types' stored formats itself: on SQLite a UUID is
32 hex digits and a time naive UTC text, on PostgreSQL both are native. Also here: the
``subjects`` column (a compact JSON list of the sorted subject ids the event names).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, SafeUUID

import pydantic_core

from shredstore.storage.chain import StoredRow, altered, native_rows

__all__ = [
    "Formats",
    "Undecodable",
    "as_stored",
    "as_uuid",
    "uuid_of_hex",
    "names",
    "parse_subjects",
    "subjects_text",
    "text_or_undecodable",
]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class Formats:
    """One backend's conversions: a raw row to a `StoredRow`, a UUID and a time to a
    parameter."""

    __slots__ = ("event_id", "row", "time")

    def __init__(self, *, postgres: bool) -> None:
        self.row: Callable[[Any], StoredRow] = _postgres_row if postgres else _sqlite_row
        """A raw row (the read columns, and the chain hashes when read for verify);
        `TamperedError` naming its position if a value does not convert (only an edit of the
        table stores one)."""
        self.event_id: Callable[[UUID], Any] = _same if postgres else _hex
        self.time: Callable[[datetime], Any] = _same if postgres else _sqlite_time


class Undecodable(bytes):
    """SQLite text that is not UTF-8, as its bytes (see `text_or_undecodable`)."""


def text_or_undecodable(data: bytes) -> str | Undecodable:
    """An SQLite ``text_factory``: the text, or `Undecodable` bytes where it is not UTF-8
    (only an edit of the table stores such text; the driver would fail the statement)."""
    try:
        return data.decode()
    except UnicodeDecodeError:
        return Undecodable(data)


def as_stored(raw: Any) -> StoredRow:
    """A raw row whose values do not convert (`Formats.row` refuses it), as a `StoredRow` of
    the values as they are: for verify, which reports such a row (its framing, and so its hash
    and authenticator, fail) and goes on."""
    raw = [bytes(value) if isinstance(value, memoryview) else value for value in raw]
    verified = len(raw) > 12
    return StoredRow(raw[0], raw[1], raw[2], raw[3], raw[4], raw[5], raw[6], raw[7], raw[8],
                     raw[9], raw[12] if verified else b"", raw[13] if verified else b"",
                     raw[10], raw[11])


def _same(value: Any) -> Any:
    return value


def _python_sqlite_row(raw: Any) -> StoredRow:
    # SQLAlchemy's SQLite formats: a UUID as 32 hex digits, a time as naive UTC text (parsed
    # with its offset appended: five times cheaper than parsing and then replacing tzinfo).
    verified = len(raw) > 12  # read for verify: with the chain hashes
    try:
        return StoredRow(raw[0], raw[1], raw[2], uuid_of_hex(raw[3]), raw[4], raw[5],
                         datetime.fromisoformat(raw[6] + "+00:00"), raw[7], raw[8],
                         raw[9], raw[12] if verified else b"", raw[13] if verified else b"",
                         raw[10], raw[11])
    except (ValueError, TypeError):  # an id or a time that does not parse, or not text
        raise altered(raw[0]) from None




def _fast_uuid(text: str) -> UUID:
    """`UUID(hex=text)` for exactly 32 hex digits, built as pydantic-core builds UUIDs (the
    instance's two slots set directly), a third of the cost of `UUID.__init__`'s parsing."""
    raw = bytes.fromhex(text)
    if len(raw) != 16 or len(text) != 32:  # fromhex skips spaces; UUID(hex=) takes none
        raise ValueError("an event id is 32 hex digits")
    made = _new_uuid(UUID)
    _set_int(made, int.from_bytes(raw))
    _set_is_safe(made, _UNKNOWN)
    return made


def _slow_uuid(text: str) -> UUID:
    if len(text) != 32:
        raise ValueError("an event id is 32 hex digits")
    return UUID(hex=text)


_new_uuid = object.__new__
_UNKNOWN = SafeUUID.unknown
"""Looked up once: an enum member read off its class goes through a descriptor each time."""
_SLOTS = vars(UUID)
_FAST = set(getattr(UUID, "__slots__", ())) >= {"int", "is_safe"}
_set_int: Any = _SLOTS["int"].__set__ if _FAST else None
_set_is_safe: Any = _SLOTS["is_safe"].__set__ if _FAST else None
uuid_of_hex: Callable[[str], UUID] = _fast_uuid if _FAST else _slow_uuid
"""A UUID from exactly 32 hex digits (SQLite's stored form); ValueError otherwise."""


def _python_postgres_row(raw: Any) -> StoredRow:
    # The time comes as microseconds since the epoch (see shredstore.storage.statements);
    # NULL for a time no datetime holds.
    try:
        moment = _EPOCH + timedelta(microseconds=raw[6])
    except (TypeError, OverflowError):
        raise altered(raw[0]) from None
    verified = len(raw) > 12  # read for verify: with the chain hashes
    mac = raw[11]
    return StoredRow(raw[0], raw[1], raw[2], raw[3], raw[4], raw[5], moment, raw[7], raw[8],
                     raw[9], bytes(raw[12]) if verified else b"",
                     bytes(raw[13]) if verified else b"", raw[10],
                     mac if mac is None or type(mac) is bytes else bytes(mac))


def as_uuid(value: Any) -> UUID:
    """An event id as stored (SQLite: 32 hex digits; PostgreSQL: a UUID) as a UUID."""
    return value if isinstance(value, UUID) else UUID(str(value))


def _hex(event_id: UUID) -> str:
    return event_id.hex


def _sqlite_time(moment: datetime) -> str:
    return moment.replace(tzinfo=None).isoformat(sep=" ", timespec="microseconds")


def subjects_text(subjects: frozenset[str] | set[str]) -> str | None:
    """The stored ``subjects`` column: a compact JSON list of the sorted ids, None for none."""
    if not subjects:
        return None
    return pydantic_core.to_json(sorted(subjects)).decode()


def parse_subjects(text: str | None) -> frozenset[str]:
    """The subject ids a stored ``subjects`` column names (none if it is malformed: a row
    that cannot say whom it names names nobody; verify reports it)."""
    if text is None:
        return frozenset()
    try:
        parsed = pydantic_core.from_json(text)
    except ValueError:
        return frozenset()
    if not isinstance(parsed, list) or not all(isinstance(item, str) for item in parsed):
        return frozenset()
    return frozenset(parsed)


def names(row: StoredRow, subject_id: str) -> bool:
    """Whether `row`'s own subjects column names `subject_id`."""
    return row.subjects is not None and subject_id in parse_subjects(row.subjects)


if native_rows is not None:
    native_rows.configure(sqlite_row=_python_sqlite_row, postgres_row=_python_postgres_row)
_sqlite_row = _python_sqlite_row if native_rows is None else native_rows.sqlite_row
_postgres_row = _python_postgres_row if native_rows is None else native_rows.postgres_row
"""A raw row as a `StoredRow` (the C versions hand any row not in the stored form to the
Python originals, which also raise for one that does not convert)."""
