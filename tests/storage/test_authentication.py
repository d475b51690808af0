"""Row authenticators in both formats: format 2 (keyed BLAKE2b) written, format 1
(HMAC-SHA256) still checked, and nothing else accepted."""

from __future__ import annotations

import hashlib
import hmac
import os
import struct
from datetime import UTC, datetime
from uuid import uuid4

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shredstore.errors import TamperedError
from shredstore.storage.authentication import RowAuthenticator
from shredstore.storage.chain import StoredRow, content_of

KEY = os.urandom(32)


def authenticator() -> RowAuthenticator:
    return RowAuthenticator(lambda: KEY, declares_personal=lambda _type: True)


def row(mac: bytes | None, *, payload: str = '{"plan":"free"}', position: int = 7) -> StoredRow:
    return StoredRow(position, "customer-1", 3, uuid4(), "Registered", 1,
                     datetime(2026, 11, 30, 12, 0, 0, 123456, tzinfo=UTC), "{}", payload,
                     '[{"subject":"c1","paths":[["name"]],"sealed":"AA=="}]', b"", b"",
                     '["c1"]', mac)


def signed(payload: str = '{"plan":"free"}', position: int = 7) -> StoredRow:
    unsigned = row(None, payload=payload, position=position)
    return unsigned._replace(mac=authenticator().sign(position, content_of(unsigned)))


def legacy_mac(stored: StoredRow) -> bytes:
    """Format 1, as stores before format 2 wrote it."""
    return hmac.digest(KEY, b"shredstore.row.v1\x00" + struct.pack(">Q", stored.position)
                       + content_of(stored), "sha256")


def test_format_2_is_the_byte_2_and_a_keyed_blake2b_of_position_and_content() -> None:
    stored = signed()
    assert stored.mac is not None
    assert len(stored.mac) == 33
    assert stored.mac[0] == 2
    derived = hmac.digest(KEY, b"shredstore.row.v2 blake2b key\x00", "sha256")
    expected = hashlib.blake2b(struct.pack(">Q", stored.position) + content_of(stored),
                               key=derived, digest_size=32, person=b"shredstore.row.2")
    assert stored.mac[1:] == expected.digest()
    assert authenticator().check(stored) is stored
    assert authenticator().verdict(stored) == "authentic"


def test_rows_written_in_format_1_still_read() -> None:
    unsigned = row(None)
    old = unsigned._replace(mac=legacy_mac(unsigned))
    assert authenticator().check(old) is old
    assert authenticator().verdict(old) == "authentic"


@pytest.mark.parametrize("change", [
    "other payload", "other position", "flipped byte", "format byte 1", "truncated",
    "format 1 of other content", "empty",
])
def test_a_mac_that_does_not_match_is_tampering(change: str) -> None:
    stored = signed()
    assert stored.mac is not None
    forged = {
        "other payload": stored._replace(payload='{"plan":"paid"}'),
        "other position": stored._replace(position=8),
        "flipped byte": stored._replace(mac=stored.mac[:-1] + bytes([stored.mac[-1] ^ 1])),
        "format byte 1": stored._replace(mac=b"\x01" + stored.mac[1:]),
        "truncated": stored._replace(mac=stored.mac[1:]),
        "format 1 of other content": stored._replace(
            mac=legacy_mac(stored._replace(payload="{}"))),
        "empty": stored._replace(mac=b""),
    }[change]
    with pytest.raises(TamperedError, match="position"):
        authenticator().check(forged)
    assert authenticator().verdict(forged) == "forged"


@given(st.text(max_size=200), st.integers(min_value=1, max_value=2**62))
def test_each_format_authenticates_exactly_its_row(payload: str, position: int) -> None:
    stored = signed(payload, position)
    assert authenticator().check(stored) is stored
    assert authenticator().verdict(stored._replace(payload=payload + " ")) == "forged"
    unsigned = stored._replace(mac=None)
    old = unsigned._replace(mac=legacy_mac(unsigned))
    assert authenticator().check(old) is old
