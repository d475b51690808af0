"""The envelope of a sealed value: both formats open, padding hides short values' lengths,
and any change to the format byte, the key version or the ciphertext is tampering."""

from __future__ import annotations

import os
import struct

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from hypothesis import given, settings
from hypothesis import strategies as st

from keyvault import TamperedError
from keyvault.envelope import (
    FORMAT_PADDED,
    FORMAT_UNPADDED,
    FORMAT_VERSION,
    MINIMUM_BUCKET,
    DataKey,
    key_version_of,
    padded_size,
)

KEY = bytes(range(32))
OVERHEAD = 1 + 4 + 12 + 16
"""Format byte, key version, nonce and tag: what every sealed value adds to its plaintext."""

SHORT_VALUES = [b'["m"]', b'["f"]', b'["male"]', b'["female"]', b'["non-binary"]',
                b'["genderqueer"]', b'["prefer not to say"]', b'["agender"]', b'[""]', b"",
                b'["United Kingdom of Great Britain and Northern Ireland"]',
                b'["Alice Example","alice@example.com"]']


def data_key(version: int = 3) -> DataKey:
    return DataKey("subject-1", version, KEY)


def old_format_seal(subject_id: str, version: int, key: bytes, plaintext: bytes,
                    aad: bytes = b"") -> bytes:
    """A format-1 value built by hand, byte for byte as the code before padding wrote it."""
    encoded = subject_id.encode()
    prefix = (b"keyvault.v1\x00" + len(encoded).to_bytes(4, "big") + encoded
              + version.to_bytes(4, "big"))
    nonce = os.urandom(12)
    return (struct.pack(">BI", 1, version) + nonce
            + AESGCM(key).encrypt(nonce, plaintext, prefix + aad))


def relabelled(sealed: bytes, fmt: int) -> bytes:
    return bytes([fmt]) + sealed[1:]


# Round trips


@pytest.mark.parametrize("length", range(301))
def test_every_short_length_round_trips_padded(length: int) -> None:
    """A plaintext of any length from 0 to 300 bytes opens as exactly what was sealed."""
    key = data_key()
    plaintext = bytes((i * 7 + 1) % 256 for i in range(length))  # ends in a non-zero byte
    assert key.open(key.seal(plaintext, b"aad"), b"aad") == plaintext
    zeros = bytes(length)  # trailing zeros must survive the unpadding
    assert key.open(key.seal(zeros, b"aad"), b"aad") == zeros


@settings(max_examples=60, deadline=None)
@given(plaintext=st.binary(max_size=70_000), aad=st.binary(max_size=40),
       padded=st.booleans())
def test_any_plaintext_round_trips_in_both_formats(plaintext: bytes, aad: bytes,
                                                   padded: bool) -> None:
    """Whatever the bytes and however long, open(seal(x)) == x, padded or not."""
    key = data_key()
    assert key.open(key.seal(plaintext, aad, padded=padded), aad) == plaintext


@pytest.mark.parametrize("length", [1_000, 10_000, 65_535, 65_536, 1_000_000])
def test_large_values_round_trip_with_at_most_12_percent_padding(length: int) -> None:
    """Large values open intact, and Padmé pads them by at most about 12%."""
    key = data_key()
    plaintext = os.urandom(length)
    sealed = key.seal(plaintext)
    assert key.open(sealed) == plaintext
    assert len(sealed) - OVERHEAD <= 1.12 * (length + 1)


# Lengths


def test_seal_pads_by_default_and_names_format_2() -> None:
    """The default is the padded format, whatever the caller passes besides the plaintext."""
    sealed = data_key().seal(b'["female"]', b"event-1/gender")
    assert FORMAT_VERSION == FORMAT_PADDED == sealed[0] == 2
    assert len(sealed) == OVERHEAD + MINIMUM_BUCKET


def test_all_short_values_seal_to_the_same_length() -> None:
    """Short enumerated values (genders, a country, a name and email) cannot be told apart by
    the length of their sealed values."""
    key = data_key()
    lengths = {len(key.seal(value, b"aad")) for value in SHORT_VALUES}
    assert lengths == {OVERHEAD + MINIMUM_BUCKET}
    assert max(len(value) for value in SHORT_VALUES) < MINIMUM_BUCKET


def test_unpadded_sealing_is_format_1_and_as_long_as_its_plaintext() -> None:
    """padded=False writes the original format, which leaks the exact length."""
    key = data_key()
    sealed = key.seal(b'["female"]', padded=False)
    assert sealed[0] == FORMAT_UNPADDED == 1
    assert len(sealed) == OVERHEAD + len(b'["female"]')


def test_padded_sizes_are_the_minimum_bucket_then_padme() -> None:
    """Up to 63 bytes (64 with the marker) one bucket; above it Padmé's steps: 8 bytes up to
    128, 16 up to 512, 32 up to 1,024; never smaller than the plaintext and its marker."""
    assert {padded_size(n) for n in range(64)} == {64}
    assert [padded_size(n) for n in (64, 71, 72, 127, 128, 511, 512, 1023)] == [
        72, 72, 80, 128, 144, 512, 544, 1024]
    assert all(padded_size(n) > n for n in range(5000))
    assert all(padded_size(padded_size(n) - 1) == padded_size(n) for n in range(5000))
    with pytest.raises(ValueError, match="negative"):
        padded_size(-1)


# The original format


def test_a_value_written_by_the_old_code_still_opens() -> None:
    """A format-1 value, as stored before padding existed, opens with the same key and aad."""
    sealed = old_format_seal("subject-1", 3, KEY, b'["female"]', b"event-1/gender")
    assert key_version_of(sealed) == 3
    assert data_key().open(sealed, b"event-1/gender") == b'["female"]'
    with pytest.raises(TamperedError):
        data_key().open(sealed, b"event-2/gender")


def test_key_version_of_reads_both_formats() -> None:
    """The key version is found in the header of either format."""
    key = data_key(version=7)
    assert key_version_of(key.seal(b"x")) == 7
    assert key_version_of(key.seal(b"x", padded=False)) == 7


# Tampering


@pytest.mark.parametrize(("padded", "to"), [(True, 1), (False, 2)],
                         ids=["padded-relabelled-as-1", "unpadded-relabelled-as-2"])
def test_a_relabelled_format_byte_is_tampering(padded: bool, to: int) -> None:
    """The format byte is authenticated: a value cannot be moved from one format to the other."""
    key = data_key()
    sealed = key.seal(b'["female"]', b"aad", padded=padded)
    with pytest.raises(TamperedError):
        key.open(relabelled(sealed, to), b"aad")


def test_an_old_value_relabelled_as_padded_is_tampering() -> None:
    """A format-1 value written by the old code does not open when its format byte says 2."""
    sealed = old_format_seal("subject-1", 3, KEY, b"x" * 80)
    with pytest.raises(TamperedError):
        data_key().open(relabelled(sealed, FORMAT_PADDED))


@pytest.mark.parametrize("fmt", [0, 3, 0x80, 0xFF])
def test_an_unknown_format_is_malformed(fmt: int) -> None:
    """A format byte other than 1 or 2 is tampering, for open and for key_version_of."""
    sealed = relabelled(data_key().seal(b"x"), fmt)
    with pytest.raises(TamperedError, match="malformed"):
        key_version_of(sealed)
    with pytest.raises(TamperedError):
        data_key().open(sealed)


@pytest.mark.parametrize("padded", [True, False], ids=["padded", "unpadded"])
def test_truncated_or_extended_ciphertext_is_tampering(padded: bool) -> None:
    """Cutting bytes off, or adding bytes (zeros or a whole bucket), fails authentication."""
    key = data_key()
    sealed = key.seal(b'["non-binary"]', b"aad", padded=padded)
    for changed in (sealed[:-1], sealed[:-16], sealed[:OVERHEAD], sealed[:5], b"",
                    sealed + b"\x00", sealed + bytes(16), sealed + bytes(MINIMUM_BUCKET)):
        with pytest.raises(TamperedError):
            key.open(changed, b"aad")


def test_every_flipped_bit_of_a_padded_value_is_tampering() -> None:
    """Each bit of header, nonce, padded ciphertext and tag is covered by the authentication."""
    key = data_key()
    sealed = key.seal(b'["m"]', b"aad")
    for index in range(len(sealed)):
        for bit in range(8):
            altered = bytearray(sealed)
            altered[index] ^= 1 << bit
            with pytest.raises(TamperedError):
                key.open(bytes(altered), b"aad")


def test_a_key_version_changed_in_the_header_is_tampering() -> None:
    """Another version in the header is refused before decryption, and with the matching key
    version, the authenticated header still tells."""
    sealed = data_key(version=3).seal(b"x")
    forged = sealed[:1] + (4).to_bytes(4, "big") + sealed[5:]
    with pytest.raises(TamperedError, match="another key version"):
        data_key(version=3).open(forged)
    with pytest.raises(TamperedError):
        data_key(version=4).open(forged)


@pytest.mark.parametrize("plaintext", [
    pytest.param(b"", id="empty"),
    pytest.param(b"value", id="no-marker"),
    pytest.param(b"\x00" * 8, id="zeros-only"),
    pytest.param(b"value\x81" + b"\x00" * 7, id="wrong-marker"),
    pytest.param(b"value\x80\x01", id="non-zero-after-marker"),
])
def test_malformed_padding_that_authenticates_is_tampering(plaintext: bytes) -> None:
    """A padded value whose padding is wrong, though it authenticates (a faulty writer), raises
    TamperedError rather than returning garbage."""
    key = data_key(version=3)
    header = struct.pack(">BI", FORMAT_PADDED, 3)
    encoded = b"subject-1"
    prefix = (b"keyvault.v1\x00" + len(encoded).to_bytes(4, "big") + encoded
              + (3).to_bytes(4, "big"))
    nonce = os.urandom(12)
    sealed = header + nonce + AESGCM(KEY).encrypt(nonce, plaintext, header + prefix + b"aad")
    with pytest.raises(TamperedError, match="malformed"):
        key.open(sealed, b"aad")


# Nonces


def test_nonces_are_fresh_for_every_seal() -> None:
    """Sealing the same value many times never repeats a nonce, and never repeats a sealed value."""
    key = data_key()
    sealed = [key.seal(b'["female"]', b"aad") for _ in range(2000)]
    assert len({value[5:17] for value in sealed}) == len(sealed)
    assert len(set(sealed)) == len(sealed)
