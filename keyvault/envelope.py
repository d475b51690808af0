"""Data keys and the envelope of a sealed value.

A sealed value is ``format (1 byte) | key version (4 bytes) | nonce (12) | ciphertext + tag``,
AES-256-GCM under the subject's data key, with associated data that binds it to the subject,
the key version and whatever the caller adds (an event id and field path, say). Moving a value
to another subject, field or event makes it fail authentication.

Two formats, both opened, named by the first byte:

- **2** (written by default): the plaintext is padded before encryption, so that a sealed
  value's length says little about its plaintext. AES-GCM is a stream mode: without padding
  the ciphertext is exactly as long as the plaintext, and an erased subject's short enumerated
  values ("m", "female", "non-binary") could be read back from their lengths alone, key or no
  key. The header as stored (format byte and key version) is part of the associated data, so a
  value cannot be relabelled from one format to the other.
- **1** (unpadded, the original format): still opened, so existing data stays readable, and
  still written with ``seal(..., padded=False)`` for callers that must not pay for padding.

Padding is ISO/IEC 7816-4 style: a 0x80 byte, then zero bytes, up to the size of a bucket. It
delimits itself, so a reader needs no table of bucket sizes and the bucket scheme below may
change without a new format. Padding that is malformed after a successful authentication can
only come from a writer bug; it raises `TamperedError`, never returns garbage.

The buckets (sizes of the padded plaintext):

- at least `MINIMUM_BUCKET` = 64 bytes. A shredstore plaintext is the JSON list of one subject's
  personal values in one event: ``["female"]`` is 10 bytes, ``["prefer not to say"]`` 21, a
  country name at most about 60, ``["Alice Example","alice@example.com"]`` 37. All of these seal
  to the same length (97 bytes, 132 in base64), so no enumerated value is told from another.
- above that, Padmé (Nikitin et al., "Reducing Metadata Leakage from Encrypted Files and
  Communication with PURBs", PETS 2019): a length L is rounded up so that only its top
  ``floor(log2(floor(log2 L))) + 1`` bits vary. It leaks O(log log L) bits of the length, against
  O(log L) for exact lengths, at an overhead of at most about 12% (less for large values),
  where powers of two would cost up to 100%.

What lengths still reveal: the bucket. Values that pad to 64 bytes or less are one class;
longer ones are told apart by bucket (8 bytes apart from 64 to 128 bytes, 16 up to 512, 32 up
to 1,024, 64 up to 2,048, ..., 2,048 up to 128 KiB: at most 1/8 of the length, less for longer
values), so a longer value's approximate size shows. Outside this envelope the stored record
still shows how many groups an event has, their subjects and field paths (shredstore's
personal column), and the sizes of plain, unsealed fields.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import struct

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from keyvault.errors import TamperedError

__all__ = [
    "FORMAT_PADDED",
    "FORMAT_UNPADDED",
    "FORMAT_VERSION",
    "MINIMUM_BUCKET",
    "DataKey",
    "key_version_of",
    "padded_size",
]

FORMAT_UNPADDED = 1
FORMAT_PADDED = 2
FORMAT_VERSION = FORMAT_PADDED
"""The format `DataKey.seal` writes by default."""

MINIMUM_BUCKET = 64
"""The smallest padded plaintext, in bytes: every plaintext of up to 63 bytes seals alike."""

_HEADER = struct.Struct(">BI")
_NONCE_SIZE = 12
_TAG_SIZE = 16
_MINIMUM = {
    FORMAT_UNPADDED: _HEADER.size + _NONCE_SIZE + _TAG_SIZE,
    FORMAT_PADDED: _HEADER.size + _NONCE_SIZE + _TAG_SIZE + 1,  # at least the 0x80 marker
}
_PADDED_MINIMUM = _MINIMUM[FORMAT_PADDED]
_CIPHERTEXT = _HEADER.size + _NONCE_SIZE
"""Where the ciphertext (and tag) of a sealed value begins."""
_MARKER = b"\x80"
KEY_SIZE = 32


def fingerprint(key: bytes) -> str:
    """A public fingerprint of a data key: names it in receipts without revealing it."""
    return hmac.new(key, b"keyvault data key fingerprint v1", hashlib.sha256).hexdigest()[:32]


def padded_size(length: int) -> int:
    """The padded size of a plaintext of `length` bytes: its bucket (see the module docstring).

    The 0x80 marker counts, so a plaintext of 63 bytes still fits the 64-byte minimum bucket.
    """
    if length < 0:
        raise ValueError("a length cannot be negative")
    needed = length + len(_MARKER)
    if needed <= MINIMUM_BUCKET:
        return MINIMUM_BUCKET
    exponent = needed.bit_length() - 1               # floor(log2 L)
    size_bits = exponent.bit_length()                # floor(log2 floor(log2 L)) + 1
    mask = (1 << (exponent - size_bits)) - 1         # the low bits Padmé zeroes
    return (needed + mask) & ~mask


def key_version_of(sealed: bytes) -> int:
    """The key version a sealed value names; raises `TamperedError` if it is malformed."""
    minimum = _MINIMUM.get(sealed[0]) if sealed else None
    if minimum is None or len(sealed) < minimum:
        raise TamperedError("a sealed value is malformed")
    version: int = _HEADER.unpack_from(sealed)[1]
    return version


def _failed() -> TamperedError:
    return TamperedError("a sealed value failed authentication: it was altered, or moved to "
                         "another subject, event or field")


def _pad(plaintext: bytes) -> bytes:
    return plaintext + _MARKER + bytes(padded_size(len(plaintext)) - len(plaintext) - 1)


def _unpad(padded: bytes) -> bytes:
    unpadded = padded.rstrip(b"\x00")
    if not unpadded.endswith(_MARKER):
        raise TamperedError("a sealed value authenticated but its padding is malformed: it was "
                            "written by a faulty sealer")
    return unpadded[:-1]


class DataKey:
    """One subject's data key, with its cipher object built once."""

    __slots__ = ("_aead", "_padded_aad", "_padded_header", "_prefix", "fingerprint",
                 "subject_id", "version")

    def __init__(self, subject_id: str, version: int, key: bytes) -> None:
        self.subject_id = subject_id
        self.version = version
        self.fingerprint = fingerprint(key)
        self._aead = AESGCM(key)
        encoded = subject_id.encode()
        self._prefix = (b"keyvault.v1\x00" + len(encoded).to_bytes(4, "big") + encoded
                        + version.to_bytes(4, "big"))
        self._padded_header = _HEADER.pack(FORMAT_PADDED, version)
        self._padded_aad = self._padded_header + self._prefix

    def seal(self, plaintext: bytes, aad: bytes = b"", *, padded: bool = True) -> bytes:
        """Encrypt and authenticate `plaintext`, bound to this subject, key version and `aad`.

        Padded by default (format 2), so the length hides which short value was sealed;
        ``padded=False`` writes format 1, as long as the plaintext plus 33 bytes.
        """
        nonce = os.urandom(_NONCE_SIZE)
        if not padded:
            header = _HEADER.pack(FORMAT_UNPADDED, self.version)
            return header + nonce + self._aead.encrypt(nonce, plaintext, self._prefix + aad)
        header = _HEADER.pack(FORMAT_PADDED, self.version)
        return header + nonce + self._aead.encrypt(nonce, _pad(plaintext),
                                                   header + self._prefix + aad)

    def open(self, sealed: bytes, aad: bytes = b"") -> bytes:
        """Decrypt a value sealed with this key and `aad`, in either format; raise
        `TamperedError` otherwise."""
        if sealed[:_HEADER.size] == self._padded_header and len(sealed) >= _PADDED_MINIMUM:
            # The usual case (format 2 under this key version), in as few steps as possible:
            # every read opens one value per subject and event.
            try:
                plaintext = self._aead.decrypt(sealed[_HEADER.size:_CIPHERTEXT],
                                               sealed[_CIPHERTEXT:], self._padded_aad + aad)
            except InvalidTag:
                raise _failed() from None
            return _unpad(plaintext)
        if key_version_of(sealed) != self.version:
            raise TamperedError("a sealed value names another key version than its subject's")
        header = sealed[:_HEADER.size]
        nonce = sealed[_HEADER.size:_CIPHERTEXT]
        padded = sealed[0] == FORMAT_PADDED
        associated = header + self._prefix + aad if padded else self._prefix + aad
        try:
            plaintext = self._aead.decrypt(nonce, sealed[_CIPHERTEXT:], associated)
        except InvalidTag:
            raise _failed() from None
        return _unpad(plaintext) if padded else plaintext

    def __repr__(self) -> str:
        return f"DataKey(version={self.version}, fingerprint={self.fingerprint!r})"
