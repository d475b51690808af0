"""The hash chain that makes the log tamper-evident, and the walk that checks it.

Every row stores ``prev_hash`` (the ``hash`` of the row before it; 32 zero bytes for the
first) and ``hash = SHA-256(prev_hash || content || mac)``, where content is the
length-prefixed stored bytes of the row (`row_content`): stream, version, event id, type,
schema version, time, metadata, payload, the sealed personal data and the subjects the event
names; and mac is the row's authenticator (see `shredstore.storage.authentication`), or its
absence. The position is deliberately left out of the content: order is what the links
protect, so a moved row breaks links instead of making every later row look modified.

Covering the authenticator makes an anchored head commit to which rows had one: an attacker
who strips a row's authenticator (to edit it as if a store without the master key had written
it) breaks every anchor kept from after that row.

Because only stored bytes are hashed (ciphertext, once personal data is encrypted), the chain
still verifies after subjects are erased.

A plain hash chain can be recomputed by someone who can rewrite the whole table. Anchor it:
keep `LogHead` values outside the database (erasure receipts do) and pass one to
``verify(expected_head=...)``.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import struct
from array import array
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from types import ModuleType
from typing import Literal, NamedTuple
from uuid import UUID, SafeUUID

from shredstore.errors import TamperedError

__all__ = [
    "GENESIS",
    "Finding",
    "LogHead",
    "UNFRAMEABLE",
    "RecentRows",
    "StoredRow",
    "VerifyReport",
    "altered",
    "chain_hash",
    "content_of",
    "frame",
    "link_hash",
    "native_rows",
    "row_content",
    "verify_rows",
]

GENESIS = bytes(32)
"""The ``prev_hash`` of the first event."""

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
_WINDOW = 100_000
"""How many recent rows verify remembers to explain a broken link (bounded memory)."""
_HASH = 32
_LENGTH = struct.Struct(">Q")
_VERSION_AND_ID = struct.Struct(">QQQ16sQ")
_SCHEMA_AND_TIME = struct.Struct(">QQQqQ")
_ABSENT = b"\x00"


class StoredRow(NamedTuple):
    """One row of the events table, exactly as stored.

    A named tuple rather than a frozen dataclass: a read builds one per event, and a tuple is
    built five times faster.
    """

    position: int
    stream_id: str
    version: int
    event_id: UUID
    event_type: str
    schema_version: int
    recorded_at: datetime
    metadata: str
    payload: str
    personal: str | None
    prev_hash: bytes
    """The chain hashes; empty (b"") in rows read for their events rather than for verify."""
    hash: bytes
    subjects: str | None = None
    """The subjects the event names, as stored: a JSON list of sorted ids (None: none). The
    subject index is a copy of it; this column, authenticated with the row, is the truth."""
    mac: bytes | None = None
    """The row's authenticator (HMAC-SHA256 under the store's row key); None if the row was
    appended by a store without the master key."""


@dataclass(frozen=True, slots=True)
class LogHead:
    """The last event of the log: its position and chain hash (position 0: an empty log)."""

    position: int
    hash: bytes

    def __str__(self) -> str:
        return f"{self.position}:{self.hash.hex()}"

    @classmethod
    def parse(cls, text: str) -> LogHead:
        """Read a head written by `str()`, as ``position:hexhash``."""
        position, _, digest = text.partition(":")
        try:
            head = cls(int(position), bytes.fromhex(digest))
        except ValueError:
            raise ValueError("a log head reads 'position:hexhash'") from None
        if head.position < 0 or len(head.hash) != 32:
            raise ValueError("a log head reads 'position:hexhash' with a 64-digit hash")
        return head


FindingKind = Literal[
    "modified", "deleted", "inserted", "reordered", "unlinked", "anchor", "unprotected",
    "resurrected", "untombstoned", "unrecorded", "forged", "index", "snapshot", "damaged",
]
"""What a finding is about. Beyond the chain's kinds: "forged", a row whose authenticator
does not match (or is missing where the row needs one); "index", a subject-index entry that
does not match the subjects its event names; "snapshot", a snapshot that failed
authentication (loads never use it); "damaged", a problem the database's own integrity check
found (restore the file from a backup). The erasure ledger and the vault disagree:
"resurrected", the vault holds a key again for a subject the ledger names; "untombstoned", the
vault has no tombstone for one; "unrecorded", the vault erased a subject the ledger does not
name (an interrupted erasure). Each is repaired by `shredstore reconcile`."""


@dataclass(frozen=True, slots=True)
class Finding:
    """One piece of evidence that the log is not as it was written."""

    kind: FindingKind
    position: int | None
    message: str

    def __str__(self) -> str:
        where = "log" if self.position is None else f"position {self.position}"
        return f"{where}: {self.kind}: {self.message}"


@dataclass(frozen=True, slots=True)
class VerifyReport:
    """The outcome of `EventStore.verify`: ``ok`` when there are no findings."""

    events_checked: int
    head: LogHead
    findings: tuple[Finding, ...] = field(default=())
    unauthenticated: int | None = None
    """Rows without an authenticator that readers accept: appended by a store without the
    master key, holding no personal data, of a class that declares none (the erasure ledger
    written by a key-less ``shredstore erase``, say). Not a finding: nothing distinguishes
    them from honest key-less appends, and their content is still covered by the chain and
    its anchors. None when the store had no master key, so no authenticator was checked."""

    @property
    def ok(self) -> bool:
        return not self.findings


def row_content(
    *,
    stream_id: str,
    version: int,
    event_id: UUID,
    event_type: str,
    schema_version: int,
    recorded_at: datetime,
    metadata: str,
    payload: str,
    personal: str | None,
    subjects: str | None,
) -> bytes:
    """A row's stored content, framed so that no two rows give the same bytes.

    Each field framed by its 8-byte big-endian length: the stream id, the version (8 bytes),
    the event id (16), the type, the schema version (8), the recorded time in microseconds
    since the epoch (8, signed), the metadata, the payload, then the personal column and the
    subjects column (each a 0 byte if NULL, else a 1 byte and the text, so NULL differs from
    empty).
    """
    return frame(stream_id, version, event_id, event_type, schema_version, recorded_at,
                 metadata, payload, personal, subjects)


def altered(position: object) -> TamperedError:
    """The error for the stored row at `position` that fails authentication, or holds a value
    no append writes (a negative version, an id or a time that does not parse, text where
    bytes belong): its position, never its values."""
    return TamperedError(f"event at position {position} failed authentication: the stored row "
                         "was altered or moved; run verify()")


UNFRAMEABLE = (struct.error, TypeError, AttributeError, ValueError, OverflowError)
"""What framing a value of the wrong type or range raises (UnicodeError is a ValueError)."""


def content_of(row: StoredRow) -> bytes:
    """`row_content` of a stored row; `TamperedError` (`altered`) if a value is not of the
    type and range that appends write (only an edit of the table stores one)."""
    try:
        return _frame_row(row)
    except UNFRAMEABLE:
        raise altered(row.position) from None


def _python_frame(  # noqa: PLR0917 (row_content's fields in their order: it runs once per row)
    stream_id: str, version: int, event_id: UUID, event_type: str, schema_version: int,
    recorded_at: datetime, metadata: str, payload: str, personal: str | None,
    subjects: str | None,
) -> bytes:
    stream = stream_id.encode()
    kind = event_type.encode()
    meta = metadata.encode()
    body = payload.encode()
    secret = _ABSENT if personal is None else b"\x01" + personal.encode()
    named = _ABSENT if subjects is None else b"\x01" + subjects.encode()
    return b"".join((
        _LENGTH.pack(len(stream)), stream,
        _VERSION_AND_ID.pack(8, version, 16, event_id.bytes, len(kind)), kind,
        _SCHEMA_AND_TIME.pack(8, schema_version, 8, (recorded_at - _EPOCH) // _MICROSECOND,
                              len(meta)), meta,
        _LENGTH.pack(len(body)), body, _LENGTH.pack(len(secret)), secret,
        _LENGTH.pack(len(named)), named,
    ))


def _python_frame_row(row: StoredRow) -> bytes:
    return _python_frame(row.stream_id, row.version, row.event_id, row.event_type,
                         row.schema_version, row.recorded_at, row.metadata, row.payload,
                         row.personal, row.subjects)


def _native_rows() -> ModuleType | None:
    """`shredstore.storage.native`, the per-row steps in C, configured; None where it was not
    built (no C compiler at install) or ``SHREDSTORE_PURE_PYTHON`` is set. It does what the
    Python originals here, in `formats` and in `authentication` do, and hands them any value
    an append does not store (tests/storage/test_native_rows.py holds the two to each other)."""
    if os.environ.get("SHREDSTORE_PURE_PYTHON"):
        return None
    try:
        from shredstore.storage import native  # noqa: PLC0415 (optional: built where it can be)
    except ImportError:
        return None
    native.configure(frame=_python_frame, stored_row=StoredRow, uuid=UUID,
                    safe_unknown=SafeUUID.unknown, epoch=_EPOCH,
                    compare_digest=hmac.compare_digest)
    return native


native_rows = _native_rows()
"""The configured C module, or None (then the Python originals run)."""
frame = _python_frame if native_rows is None else native_rows.frame
"""`row_content` with its fields in order, without keywords: what appends call per row."""
_frame_row = _python_frame_row if native_rows is None else native_rows.frame_row


def link_hash(prev_hash: bytes, content: bytes, mac: bytes | None) -> bytes:
    """The chain hash of a row from its predecessor's hash, its content and authenticator."""
    tag = _ABSENT if mac is None else b"\x01" + mac
    return hashlib.sha256(b"".join((prev_hash, content, _LENGTH.pack(len(tag)), tag))).digest()


def chain_hash(
    prev_hash: bytes,
    *,
    stream_id: str,
    version: int,
    event_id: UUID,
    event_type: str,
    schema_version: int,
    recorded_at: datetime,
    metadata: str,
    payload: str,
    personal: str | None,
    subjects: str | None,
    mac: bytes | None,
) -> bytes:
    """The chain hash of a row whose predecessor's hash is `prev_hash`.

    SHA-256 of `prev_hash`, the row's content (`row_content`) and its authenticator (a 0 byte
    if none, else a 1 byte and the 32 bytes), the last framed by its length too.
    """
    return link_hash(prev_hash, row_content(
        stream_id=stream_id, version=version, event_id=event_id, event_type=event_type,
        schema_version=schema_version, recorded_at=recorded_at, metadata=metadata,
        payload=payload, personal=personal, subjects=subjects), mac)


def row_hash(row: StoredRow) -> bytes:
    """Recompute `row`'s hash from its stored prev_hash, content and authenticator;
    `TamperedError` if a value is not of the type appends write."""
    content = content_of(row)
    try:
        return link_hash(row.prev_hash, content, row.mac)
    except TypeError:  # a hash or an authenticator that is not bytes
        raise altered(row.position) from None


def verify_rows(rows: Iterable[StoredRow], *, expected_head: LogHead | None = None) -> VerifyReport:
    """Walk `rows` in position order and report every break of the chain, by position.

    - modified: a row's content or hash no longer matches (checked on the row alone);
    - deleted: a position is missing;
    - inserted: a row that its successor links past;
    - reordered: a row that links to a later row, or that a row two places on links to;
    - unlinked: a row whose predecessor is not in the log (deleted and the gap closed);
    - anchor: the log no longer holds `expected_head`, a head kept from earlier.
    """
    walk = _ChainWalk(expected_head)
    for row in rows:
        walk.step(row)
    return walk.report()


class RecentRows:
    """The hashes and positions of the last `size` rows, to explain a broken link.

    Two flat buffers of fixed size (3.2 MB of hashes and 0.8 MB of positions for 100,000
    rows) instead of a dictionary: no object per row, and no growth or compaction as the
    window slides over millions of rows. A lookup scans the hashes at C speed; it only
    happens on a broken link.
    """

    def __init__(self, size: int) -> None:
        self.size = size
        self.hashes = bytearray(_HASH * size)
        self.positions = array("q", bytes(8 * size))
        self.added = 0

    def add(self, digest: bytes, position: int) -> None:
        if len(digest) != _HASH:  # a mangled hash column: no link can name it
            return
        slot = self.added % self.size
        self.hashes[slot * _HASH:(slot + 1) * _HASH] = digest
        self.positions[slot] = position
        self.added += 1

    def get(self, digest: bytes) -> int | None:
        """The position of the most recent row with hash `digest`, if it is in the window."""
        if len(digest) != _HASH:
            return None
        newest = self.added % self.size * _HASH  # slots before it are the newest ones
        filled = min(self.added, self.size) * _HASH
        for start, stop in ((0, newest), (newest, filled)):
            end = stop
            while (at := self.hashes.rfind(digest, start, end)) != -1:
                if at % _HASH == 0:
                    return self.positions[at // _HASH]
                end = at + _HASH - 1  # a match across two slots: look before it
        return None


class _ChainWalk:
    """The state of one verify pass; memory is bounded by `_WINDOW` and by the findings."""

    def __init__(self, expected_head: LogHead | None) -> None:
        self.findings: dict[tuple[int | None, str], Finding] = {}
        self.seen = RecentRows(_WINDOW)
        self.forward: dict[bytes, int] = {}  # a predecessor not seen yet -> who wants it
        self.skipped_over: set[int] = set()  # rows that a successor linked past
        self.reordered: set[int] = set()
        self.previous: StoredRow | None = None
        self.previous_intact = True
        self.count = 0
        self.expected_head = expected_head
        self.anchored_hash: bytes | None = None

    def found(self, kind: FindingKind, position: int | None, message: str) -> None:
        self.findings.setdefault((position, kind), Finding(kind, position, message))

    def step(self, row: StoredRow) -> None:
        self.count += 1
        expected_position = self.previous.position + 1 if self.previous is not None else 1
        for missing in range(expected_position, row.position):
            self.found("deleted", missing, "no event at this position: a row was deleted")

        try:
            intact = row_hash(row) == row.hash
        except TamperedError:
            intact = False  # framing it failed: no hash of it can match
        if not intact:
            self.found("modified", row.position,
                       "the stored hash does not match the row's content")
        elif row.position == expected_position and self.previous_intact:
            self._check_link(row)

        earlier = self.forward.pop(row.hash, None)
        if earlier is not None:  # an earlier row links forward to this one: they swapped
            for position in (earlier, row.position):
                self.reordered.add(position)
                self.found("reordered", position, "this event is out of its written order")

        if self.expected_head is not None and row.position == self.expected_head.position:
            self.anchored_hash = row.hash
        self.seen.add(row.hash, row.position)
        self.previous, self.previous_intact = row, intact

    def _check_link(self, row: StoredRow) -> None:
        wanted = self.previous.hash if self.previous is not None else GENESIS
        if row.prev_hash == wanted:
            return
        target = self.seen.get(row.prev_hash)
        if target is None:
            self.forward[row.prev_hash] = row.position
        elif row.position - target == 2:
            self.skipped_over.add(row.position - 1)
        else:
            self.reordered.add(row.position)
            self.found("reordered", row.position, f"this event belongs after position {target}")

    def report(self) -> VerifyReport:
        for position in sorted(self.skipped_over - self.reordered):
            self.found("inserted", position,
                       "the next event links past this one: it was inserted")
        for position in sorted(self.forward.values()):
            self.found("unlinked", position,
                       "the event this one follows is not in the log: it was deleted or altered")
        anchor = self.expected_head
        if anchor is not None and anchor.position > 0:
            if self.anchored_hash is None:
                self.found("anchor", anchor.position,
                           "the anchored head is missing: the log was truncated")
            elif self.anchored_hash != anchor.hash:
                self.found("anchor", anchor.position,
                           "the event at the anchored head has another hash: "
                           "the log was rewritten")
        head = (LogHead(self.previous.position, self.previous.hash)
                if self.previous is not None else LogHead(0, GENESIS))
        ordered = sorted(self.findings.values(),
                         key=lambda f: (-1 if f.position is None else f.position, f.kind))
        return VerifyReport(events_checked=self.count, head=head, findings=tuple(ordered))
