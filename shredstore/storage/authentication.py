"""Per-row authenticators: any change to a stored event or snapshot is an error on read.

The hash chain shows that rows changed only to a `verify` pass, and only against an anchor kept
elsewhere: whoever can rewrite the table can recompute the chain. An authenticator cannot be
recomputed without a key. A store with the master key asks the vault for the service key
``shredstore.rows.v1`` and stores, with every row it appends, an authenticator of its position
and content (format 2: the byte 2 and keyed BLAKE2b-256, under a key derived from the service
key, of ``position || content``; rows written before it carry format 1, ``HMAC-SHA256(key,
label || position || content)``, and are still checked; BLAKE2b, a standard keyed hash, costs a
third of HMAC-SHA256 here, and every read and append computes one per row), where content is
the chain's framing of the whole row (`shredstore.storage.chain.row_content`: the plain
payload, the sealed personal column and the subjects the event names included). Every read of a
store with the master key checks it, in the storage layer, before anything above sees the row:
a relabelled, replaced or NULLed personal group, an edited plain field, a row moved to another
position, all raise `TamperedError`, also when the subject's key is erased and without running
`verify`. The key is a vault service key: an erasure never touches it, and a master-key
rotation re-wraps it.

A row without an authenticator was appended by a store without the master key (the erasure
ledger written by a key-less ``shredstore erase``). Such a row cannot hold personal data: a
reader with the master key refuses one that has a personal column, or whose registered class
declares personal data (that catches an attacker who NULLs the personal column and the
authenticator of an event whose personal field is optional). Other rows without one are
accepted as unauthenticated: `verify` counts them (`VerifyReport.unauthenticated`). A store
opened without the master key cannot check authenticators at all; it still has the chain.

Snapshots carry an authenticator of their own, over stream, version, type, schema version,
state and personal column: one that fails is never loaded (the aggregate replays its events).
"""

from __future__ import annotations

import hashlib
import hmac
import struct
from collections.abc import Callable
from typing import Literal

from shredstore.errors import TamperedError
from shredstore.storage.chain import (
    UNFRAMEABLE,
    Finding,
    StoredRow,
    altered,
    content_of,
    native_rows,
)
from shredstore.storage.snapshots import SnapshotRow

__all__ = ["ROWS_KEY", "RowAuthenticator", "RowCheck", "Verdict"]

ROWS_KEY = "shredstore.rows.v1"
"""The name of the vault service key that authenticates rows and snapshots."""

_ROW_LABEL = b"shredstore.row.v1\x00"
_SNAPSHOT_LABEL = b"shredstore.snapshot.v1\x00"
_POSITION = struct.Struct(">Q")
_FORMAT_2 = b"\x02"
_FORMAT_2_SIZE = 33
_FORMAT_1_SIZE = 32
_FORMAT_2_KEY_LABEL = b"shredstore.row.v2 blake2b key\x00"
_FORMAT_2_PERSON = b"shredstore.row.2"
_LENGTH = struct.Struct(">Q")
_NUMBERS = struct.Struct(">QqQq")

Verdict = Literal["authentic", "unauthenticated", "forged", "stripped"]
"""What a row's authenticator says: it matches; there is none and none is needed; it does
not match; there is none where one is needed (personal data)."""


class RowAuthenticator:
    """Computes and checks the authenticators of rows and snapshots under one key.

    `key()` gives the 32-byte key; it is called on first use, so that a store opens (and can
    report a subject's status) even where the key cannot be had, and the reason (a wrong
    master key, say) is raised by the first append or read instead. `declares_personal(
    event_type)` says whether the registered class of a type declares personal data: a row
    of such a type must have an authenticator.
    """

    __slots__ = ("_declares_personal", "_key", "_legacy", "_rows", "_source")

    def __init__(self, key: Callable[[], bytes], *,
                 declares_personal: Callable[[str], bool]) -> None:
        self._source = key
        self._key: bytes | None = None
        self._rows: hashlib.blake2b | None = None
        """The keyed BLAKE2b state of format 2, continued by a copy per row."""
        self._legacy: hmac.HMAC | None = None
        """HMAC-SHA256 keyed and fed the row label: format 1, checked on rows written so."""
        self._declares_personal = declares_personal

    def sign(self, position: int, content: bytes) -> bytes:
        """The authenticator of the row at `position` whose framed content is `content`
        (format 2: the byte 2, then keyed BLAKE2b-256 of position and content)."""
        return _format_2(self._rows if self._rows is not None else self._keyed(), position,
                         content)

    def _sign_legacy(self, position: int, content: bytes) -> bytes:
        """Format 1: ``HMAC-SHA256(key, label || position || content)``, 32 bytes."""
        if self._legacy is None:
            self._keyed()
        if self._legacy is None:
            raise RuntimeError("the row key was not set")
        mac = self._legacy.copy()
        mac.update(_POSITION.pack(position))
        mac.update(content)
        return mac.digest()

    def _matches(self, position: int, content: bytes, mac: bytes) -> bool:
        """Whether `mac`, in either format, authenticates `content` at `position`."""
        if len(mac) == _FORMAT_2_SIZE and mac[0] == _FORMAT_2[0]:
            return hmac.compare_digest(self.sign(position, content), mac)
        return len(mac) == _FORMAT_1_SIZE and hmac.compare_digest(
            self._sign_legacy(position, content), mac)

    def ready(self) -> None:
        """Fetch the key now if it was not yet: call before a write transaction, since
        fetching it the first time may write to the vault (its database, on SQLite, is then
        locked by that very transaction)."""
        if self._key is None:
            self._load()

    def _keyed(self) -> hashlib.blake2b:
        self._load()
        if self._rows is None:
            raise RuntimeError("the row key was not set")
        return self._rows

    def _load(self) -> bytes:
        key = self._source()
        if len(key) != 32:
            raise ValueError("a row key is 32 bytes")
        self._key = key
        self._legacy = hmac.new(key, _ROW_LABEL, "sha256")
        # Format 2's key is derived from the row key, so the two formats never share one.
        self._rows = hashlib.blake2b(
            key=hmac.digest(key, _FORMAT_2_KEY_LABEL, "sha256"), digest_size=32,
            person=_FORMAT_2_PERSON)
        return key

    def verdict(self, row: StoredRow) -> Verdict:
        """What `row`'s authenticator says of it (see `Verdict`). A row holding a value no
        append writes (see `chain.altered`; a position below 1) is forged, with or without
        one."""
        try:
            if row.mac is None:
                content_of(row)  # only its values' types and ranges are checked here
                if row.personal is not None or self._declares_personal(row.event_type):
                    return "stripped"
                return "unauthenticated"
            authentic = self._matches(row.position, content_of(row), row.mac)
        except (TamperedError, struct.error, TypeError):
            return "forged"
        return "authentic" if authentic else "forged"

    def check(self, row: StoredRow) -> StoredRow:
        """`row` itself if it may be read; else `TamperedError`, naming only its position."""
        mac = row.mac
        try:
            # Every row read comes through here: the usual case (format 2) first, in C where
            # it was built.
            if mac is not None:
                # True or False for format 2; None for another format (format 1), checked
                # here, and a failure judged once more by `verdict` below.
                authentic = _authentic(row, self._rows if self._rows is not None
                                       else self._keyed())
                if authentic or (authentic is None
                                 and self._matches(row.position, content_of(row), mac)):
                    return row
        except UNFRAMEABLE:  # a position below 0, an authenticator not bytes, a bad value
            raise altered(row.position) from None
        verdict = self.verdict(row)
        if verdict == "unauthenticated":
            return row
        raise TamperedError(describe(row.position, verdict))

    def sign_snapshot(self, row: SnapshotRow) -> bytes:
        """The authenticator of a snapshot row (its own `mac` is not part of it)."""
        key = self._key if self._key is not None else self._load()
        return hmac.digest(key, _SNAPSHOT_LABEL + _snapshot_content(row), "sha256")

    def snapshot_is_authentic(self, row: SnapshotRow) -> bool:
        """Whether a stored snapshot is as this store wrote it (one without a MAC is not)."""
        try:
            return row.mac is not None and hmac.compare_digest(self.sign_snapshot(row), row.mac)
        except (struct.error, TypeError, AttributeError, ValueError):
            return False  # a value no snapshot write stores: not as this store wrote it


def _python_authentic(row: StoredRow, keyed: hashlib.blake2b) -> bool | None:
    """Whether a row's authenticator of format 2 matches its position and content under the
    keyed state; None if it has none of format 2 (`RowAuthenticator.check` then judges it)."""
    mac = row.mac
    if mac is None or len(mac) != _FORMAT_2_SIZE or mac[0] != _FORMAT_2[0]:
        return None
    return hmac.compare_digest(_format_2(keyed, row.position, content_of(row)), mac)


def _format_2(keyed: hashlib.blake2b, position: int, content: bytes) -> bytes:
    """A format-2 authenticator: the byte 2, then the keyed BLAKE2b state continued by a copy
    with the position and the content."""
    mac = keyed.copy()
    mac.update(_POSITION.pack(position))
    mac.update(content)
    return _FORMAT_2 + mac.digest()


_authentic = _python_authentic if native_rows is None else native_rows.authentic


def describe(position: int, verdict: Verdict) -> str:
    """A message for a row that failed authentication: its position, never its values."""
    if verdict == "stripped":
        return (f"event at position {position} has no authenticator, yet it holds or declares "
                "personal data: the stored row was altered; run verify()")
    return str(altered(position))


def _snapshot_content(row: SnapshotRow) -> bytes:
    stream = row.stream_id.encode()
    kind = row.type_name.encode()
    state = row.state.encode()
    personal = b"\x00" if row.personal is None else b"\x01" + row.personal.encode()
    return b"".join((
        _LENGTH.pack(len(stream)), stream, _NUMBERS.pack(8, row.version, 8, row.schema_version),
        _LENGTH.pack(len(kind)), kind, _LENGTH.pack(len(state)), state,
        _LENGTH.pack(len(personal)), personal,
    ))


class RowCheck:
    """The authenticator part of a verify pass: a finding per failing row, a count of rows
    accepted without one (see `VerifyReport.unauthenticated`)."""

    def __init__(self, authenticator: RowAuthenticator) -> None:
        self._authenticator = authenticator
        self.findings: list[Finding] = []
        self.unauthenticated = 0

    def step(self, row: StoredRow) -> None:
        verdict = self._authenticator.verdict(row)
        if verdict == "unauthenticated":
            self.unauthenticated += 1
        elif verdict != "authentic":
            self.findings.append(Finding("forged", row.position, _FINDINGS[verdict]))


_FINDINGS = {
    "forged": "the row's authenticator does not match its content or position: it was "
              "altered, moved or forged (reads of it raise TamperedError)",
    "stripped": "the row has no authenticator, yet it holds or its class declares personal "
                "data: its personal column or authenticator was removed (reads of it raise "
                "TamperedError)",
}
